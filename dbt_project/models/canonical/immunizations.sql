{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        unique_key='immunization_key',
        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__immunizations'), 'immunization_source_key', 'immunization_key') }}",
    )
}}

with

immunizations as (

    select * from {{ ref('stg_fhir__immunizations') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

final as (

    select

        ---------- ids (keyed hashes for clinical resources; location key as in locations)
        {{ keyed_hash('immunization_source_key') }} as immunization_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'encounter_id')) }} as encounter_key,
        {{ fhir_resource_key('source_system', 'location_id') }} as location_key,
        source_system,

        ---------- codes
        immunization_status,
        status_reason_code,
        vaccine_code,
        vaccine_display,

        ---------- flags
        coalesce(immunization_status = 'completed', false) as is_completed,
        is_primary_source,

        ---------- timestamps (UTC)
        occurred_at,
        cast(occurred_at as date) as occurred_date,
        recorded_at,

        ---------- record metadata
        last_updated_at,
        _dlt_load_id

    from immunizations

)

select * from final
