{{
    config(
        unique_key='immunization_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'immunization'), 'immunization_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'immunization') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_immunizations as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as immunization_source_key,
        id as immunization_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'patient', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'encounter', 'id') }} as encounter_id,
        {{ fhir_reference('resource', 'location', 'id') }} as location_id,
        {{ fhir_reference('resource', 'performer[0].actor', 'id') }} as performer_id,
        {{ fhir_reference('resource', 'performer[0].actor', 'type') }} as performer_type,

        ---------- codes
        {{ json_string('resource', 'status') }} as immunization_status,
        {{ fhir_codeable_concept('resource', 'statusReason', none, 'code') }} as status_reason_code,
        {{ fhir_codeable_concept('resource', 'vaccineCode', var('cvx_system'), 'code') }} as vaccine_code,
        {{ fhir_codeable_concept('resource', 'vaccineCode', var('cvx_system'), 'system') }} as vaccine_system,
        {{ fhir_codeable_concept('resource', 'vaccineCode', var('cvx_system'), 'display') }} as vaccine_display,
        {{ fhir_codeable_concept('resource', 'vaccineCode', none, 'text') }} as vaccine_text,
        {{ fhir_codeable_concept('resource', 'vaccineCode', none, 'codings') }} as vaccine_codings,

        ---------- administration
        {{ json_boolean('resource', 'primarySource') }} as is_primary_source,
        {{ json_string('resource', 'lotNumber') }} as lot_number,
        {{ fhir_quantity('resource', 'doseQuantity', 'value') }} as dose_quantity,
        {{ fhir_quantity('resource', 'doseQuantity', 'code') }} as dose_unit_code,

        ---------- timestamps (UTC)
        {{ json_timestamp('resource', 'occurrenceDateTime') }} as occurred_at,
        {{ json_string('resource', 'occurrenceString') }} as occurrence_text,
        {{ json_timestamp('resource', 'recorded') }} as recorded_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_immunizations

)

select * from final
