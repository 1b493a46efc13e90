{{
    config(
        materialized='incremental',
        incremental_strategy='delete+insert',
        on_schema_change='fail',
        unique_key='medication_dispense_key',
        pre_hook="{{ canonical_delete_changed_rows(ref('stg_fhir__medication_dispenses'), 'medication_dispense_source_key', 'medication_dispense_key') }}",
    )
}}

with

medication_dispenses as (

    select * from {{ ref('stg_fhir__medication_dispenses') }}
    {%- if is_incremental() %}
        -- resources loaded since the last build (macros/canonical_delete_changed_rows.sql)
        where {{ fhir_loaded_since_last_build() }}
    {%- endif %}

),

final as (

    select

        ---------- ids (keyed hashes for clinical resources; location key as in locations)
        {{ keyed_hash('medication_dispense_source_key') }} as medication_dispense_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'patient_id')) }} as patient_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'encounter_id')) }} as encounter_key,
        {{ keyed_hash(fhir_resource_key('source_system', 'medication_request_id')) }} as medication_request_key,
        {{ fhir_resource_key('source_system', 'location_id') }} as location_key,
        source_system,

        ---------- codes
        medication_dispense_status,
        medication_code,
        medication_display,

        ---------- flags
        coalesce(medication_dispense_status = 'completed', false) as is_completed,

        ---------- quantities
        dispensed_quantity,
        dispensed_quantity_unit,
        {{ duration_in_days('days_supply', 'days_supply_unit_code') }} as days_supply,

        ---------- timestamps (UTC)
        prepared_at,
        handed_over_at,
        cast(handed_over_at as date) as handed_over_date,

        ---------- record metadata
        last_updated_at,
        _dlt_load_id

    from medication_dispenses

)

select * from final
