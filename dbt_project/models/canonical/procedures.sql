{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        unique_key='procedure_key',
        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__procedures'), 'procedure_source_key', 'procedure_key') }}",
    )
}}

with

procedures as (

    select * from {{ ref('stg_fhir__procedures') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

final as (

    select

        ---------- ids (keyed hashes for clinical resources; directory keys as in their models)
        {{ keyed_hash('procedure_source_key') }} as procedure_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'encounter_id')) }} as encounter_key,
        case
            when reason_reference_type = 'Condition'
                then {{ keyed_hash(fhir_resource_key('source_system', 'reason_reference_id')) }}
        end as reason_condition_key,
        case
            when performer_type = 'Practitioner' then {{ fhir_resource_key('source_system', 'performer_id') }}
        end as performer_practitioner_key,
        {{ fhir_resource_key('source_system', 'location_id') }} as location_key,
        source_system,

        ---------- codes
        procedure_status,
        procedure_code,
        procedure_display,
        procedure_category_code,
        reason_code,

        ---------- flags
        coalesce(procedure_status = 'completed', false) as is_completed,

        ---------- timestamps (UTC)
        performed_started_at,
        performed_ended_at,
        cast(performed_started_at as date) as performed_date,

        ---------- measures (null unless the period is closed and valid)
        case
            when performed_ended_at >= performed_started_at
                then {{ dbt.datediff('performed_started_at', 'performed_ended_at', 'minute') }}
        end as duration_minutes,

        ---------- record metadata
        last_updated_at,
        _dlt_load_id

    from procedures

)

select * from final
