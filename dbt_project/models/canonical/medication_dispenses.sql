with

medication_dispenses as (

    select * from {{ ref('stg_fhir__medication_dispenses') }}

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
        last_updated_at

    from medication_dispenses

)

select * from final
