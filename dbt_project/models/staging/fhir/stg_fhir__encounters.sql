{{
    config(
        unique_key='encounter_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'encounter'), 'encounter_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'encounter') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_encounters as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as encounter_source_key,
        id as encounter_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'subject', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'subject', 'type') }} as subject_type,
        {{ fhir_reference('resource', 'serviceProvider', 'id') }} as organization_id,
        {{ fhir_reference('resource', 'location[0].location', 'id') }} as location_id,
        {{ fhir_reference('resource', 'participant[0].individual', 'id') }} as practitioner_id,

        ---------- codes
        {{ json_string('resource', 'status') }} as encounter_status,
        {{ json_string('resource', 'class.code') }} as encounter_class_code,
        {{ json_string('resource', 'class.system') }} as encounter_class_system,
        {{ json_string('resource', 'class.display') }} as encounter_class_display,
        {{ fhir_codeable_concept('resource', 'type[0]', var('snomed_system'), 'code') }} as encounter_type_code,
        {{ fhir_codeable_concept('resource', 'type[0]', var('snomed_system'), 'system') }} as encounter_type_system,
        {{ fhir_codeable_concept('resource', 'type[0]', var('snomed_system'), 'display') }} as encounter_type_display,
        {{ fhir_codeable_concept('resource', 'type[0]', none, 'text') }} as encounter_type_text,
        {{ fhir_codeable_concept(
            'resource',
            'hospitalization.dischargeDisposition',
            var('discharge_disposition_system'),
            'code'
        ) }} as discharge_disposition_code,
        {{ fhir_codeable_concept(
            'resource',
            'hospitalization.dischargeDisposition',
            var('discharge_disposition_system'),
            'system'
        ) }} as discharge_disposition_system,
        {{ fhir_codeable_concept(
            'resource',
            'hospitalization.dischargeDisposition',
            var('discharge_disposition_system'),
            'display'
        ) }} as discharge_disposition_display,

        ---------- timestamps (UTC)
        {{ fhir_period('resource', 'period', 'start') }} as started_at,
        {{ fhir_period('resource', 'period', 'end') }} as ended_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_encounters

)

select * from final
