{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        unique_key='encounter_key',
        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__encounters'), 'encounter_source_key', 'encounter_key') }}",
    )
}}

with

encounters as (

    select * from {{ ref('stg_fhir__encounters') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

encounter_classes as (

    select * from {{ ref('encounter_class') }}

),

encounters_joined_to_classes as (

    select
        encounters.*,
        cast(encounters.started_at as date) as start_date,
        cast(encounters.ended_at as date) as end_date,
        encounter_classes.display as encounter_class_name,
        coalesce(encounter_classes.is_inpatient, false) as is_inpatient,
        coalesce(encounter_classes.is_emergency, false) as is_emergency,
        -- a period is valid when it has a start and does not end before it starts
        (
            encounters.started_at is not null
            and coalesce(encounters.ended_at >= encounters.started_at, true)
        ) as has_valid_period
    from encounters
    left join encounter_classes
        on encounters.encounter_class_code = encounter_classes.code

),

final as (

    select

        ---------- ids (keyed hashes; the patient key matches patients.patient_key)
        {{ keyed_hash('encounter_source_key') }} as encounter_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        source_system,
        organization_id,
        location_id,
        practitioner_id,
        -- directory keys, as in organizations / locations / practitioners
        {{ fhir_resource_key('source_system', 'organization_id') }} as organization_key,
        {{ fhir_resource_key('source_system', 'location_id') }} as location_key,
        {{ fhir_resource_key('source_system', 'practitioner_id') }} as practitioner_key,

        ---------- codes
        encounter_status,
        encounter_class_code,
        coalesce(encounter_class_name, encounter_class_display) as encounter_class_display,
        encounter_type_code,
        encounter_type_display,
        discharge_disposition_code,
        discharge_disposition_display,

        ---------- flags
        is_inpatient,
        is_emergency,
        has_valid_period,

        ---------- timestamps (UTC)
        started_at,
        ended_at,
        start_date,
        end_date,

        ---------- measures (null unless the period is valid and closed)
        case
            when has_valid_period and ended_at is not null
                then {{ dbt.datediff('started_at', 'ended_at', 'minute') }}  -- noqa: LT02,LT05
                    / 60.0
        end as length_of_stay_hours,
        -- inpatient days = midnights spent (a same-day stay counts 0)
        case
            when has_valid_period and ended_at is not null and is_inpatient
                then {{ dbt.datediff('start_date', 'end_date', 'day') }}
        end as inpatient_days,

        ---------- record metadata
        last_updated_at,
        _dlt_load_id

    from encounters_joined_to_classes

)

select * from final
