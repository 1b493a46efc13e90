{{
    config(
        unique_key='medication_dispense_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'medication_dispense'), 'medication_dispense_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'medication_dispense') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_medication_dispenses as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as medication_dispense_source_key,
        id as medication_dispense_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'subject', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'context', 'id') }} as encounter_id,
        {{ fhir_reference('resource', 'authorizingPrescription[0]', 'id') }} as medication_request_id,
        {{ fhir_reference('resource', 'medicationReference', 'id') }} as medication_reference_id,
        {{ fhir_reference('resource', 'performer[0].actor', 'id') }} as performer_id,
        {{ fhir_reference('resource', 'performer[0].actor', 'type') }} as performer_type,
        {{ fhir_reference('resource', 'location', 'id') }} as location_id,

        ---------- codes
        {{ json_string('resource', 'status') }} as medication_dispense_status,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', var('rxnorm_system'), 'code') }}
            as medication_code,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', var('rxnorm_system'), 'system') }}
            as medication_system,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', var('rxnorm_system'), 'display') }}
            as medication_display,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', none, 'text') }} as medication_text,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', none, 'codings') }}
            as medication_codings,

        ---------- quantities
        {{ fhir_quantity('resource', 'quantity', 'value') }} as dispensed_quantity,
        {{ fhir_quantity('resource', 'quantity', 'unit') }} as dispensed_quantity_unit,
        {{ fhir_quantity('resource', 'daysSupply', 'value') }} as days_supply,
        {{ fhir_quantity('resource', 'daysSupply', 'code') }} as days_supply_unit_code,

        ---------- timestamps (UTC)
        {{ json_timestamp('resource', 'whenPrepared') }} as prepared_at,
        {{ json_timestamp('resource', 'whenHandedOver') }} as handed_over_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_medication_dispenses

)

select * from final
