{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        unique_key='medication_request_key',
        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__medication_requests'), 'medication_request_source_key', 'medication_request_key') }}",
    )
}}

with

medication_requests as (

    select * from {{ ref('stg_fhir__medication_requests') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

final as (

    select

        ---------- ids (keyed hashes for clinical resources; practitioner key as in practitioners)
        {{ keyed_hash('medication_request_source_key') }} as medication_request_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'encounter_id')) }} as encounter_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'reason_condition_id')) }} as reason_condition_key,
        case
            when requester_type = 'Practitioner' then {{ fhir_resource_key('source_system', 'requester_id') }}
        end as requester_practitioner_key,
        source_system,

        ---------- codes
        medication_request_status,
        medication_request_intent,
        medication_code,
        medication_display,

        ---------- flags
        coalesce(medication_request_status = 'active', false) as is_active,

        ---------- dispense request
        number_of_repeats_allowed,
        dispense_quantity,
        dispense_quantity_unit,
        {{ duration_in_days('expected_supply_duration', 'expected_supply_duration_unit_code') }}
            as expected_supply_days,

        ---------- timestamps (UTC)
        authored_at,
        cast(authored_at as date) as authored_date,
        validity_started_at,
        validity_ended_at,

        ---------- record metadata
        last_updated_at,
        _dlt_load_id

    from medication_requests

)

select * from final
