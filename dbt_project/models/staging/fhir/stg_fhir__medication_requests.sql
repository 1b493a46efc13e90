{{
    config(
        unique_key='medication_request_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'medication_request'), 'medication_request_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'medication_request') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_medication_requests as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as medication_request_source_key,
        id as medication_request_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'subject', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'encounter', 'id') }} as encounter_id,
        {{ fhir_reference('resource', 'requester', 'id') }} as requester_id,
        {{ fhir_reference('resource', 'requester', 'type') }} as requester_type,
        {{ fhir_reference('resource', 'medicationReference', 'id') }} as medication_reference_id,
        {{ fhir_reference('resource', 'reasonReference[0]', 'id') }} as reason_condition_id,

        ---------- codes
        {{ json_string('resource', 'status') }} as medication_request_status,
        {{ json_string('resource', 'intent') }} as medication_request_intent,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', var('rxnorm_system'), 'code') }}
            as medication_code,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', var('rxnorm_system'), 'system') }}
            as medication_system,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', var('rxnorm_system'), 'display') }}
            as medication_display,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', none, 'text') }} as medication_text,
        {{ fhir_codeable_concept('resource', 'medicationCodeableConcept', none, 'codings') }} as medication_codings,

        ---------- dispense request
        {{ json_integer('resource', 'dispenseRequest.numberOfRepeatsAllowed') }} as number_of_repeats_allowed,
        {{ fhir_quantity('resource', 'dispenseRequest.quantity', 'value') }} as dispense_quantity,
        {{ fhir_quantity('resource', 'dispenseRequest.quantity', 'unit') }} as dispense_quantity_unit,
        {{ fhir_quantity('resource', 'dispenseRequest.expectedSupplyDuration', 'value') }}
            as expected_supply_duration,
        {{ fhir_quantity('resource', 'dispenseRequest.expectedSupplyDuration', 'code') }}
            as expected_supply_duration_unit_code,

        ---------- timestamps (UTC)
        {{ json_timestamp('resource', 'authoredOn') }} as authored_at,
        {{ fhir_period('resource', 'dispenseRequest.validityPeriod', 'start') }} as validity_started_at,
        {{ fhir_period('resource', 'dispenseRequest.validityPeriod', 'end') }} as validity_ended_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_medication_requests

)

select * from final
