{{
    config(
        unique_key='condition_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'condition'), 'condition_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'condition') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_conditions as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as condition_source_key,
        id as condition_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'subject', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'encounter', 'id') }} as encounter_id,

        ---------- codes
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'code') }} as condition_code,
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'system') }} as condition_system,
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'display') }} as condition_display,
        {{ fhir_codeable_concept('resource', 'code', none, 'text') }} as condition_text,
        {{ fhir_codeable_concept('resource', 'code', var('icd10cm_system'), 'code') }} as icd10_code,
        {{ fhir_codeable_concept('resource', 'code', var('icd10cm_system'), 'display') }} as icd10_display,
        {{ fhir_codeable_concept('resource', 'code', none, 'codings') }} as condition_codings,
        {{ fhir_codeable_concept('resource', 'category[0]', var('condition_category_system'), 'code') }}
            as condition_category_code,
        {{ fhir_codeable_concept('resource', 'clinicalStatus', var('condition_clinical_system'), 'code') }}
            as clinical_status_code,
        {{ fhir_codeable_concept('resource', 'verificationStatus', var('condition_verification_system'), 'code') }}
            as verification_status_code,

        ---------- timestamps (UTC)
        {{ json_timestamp('resource', 'onsetDateTime') }} as onset_at,
        {{ json_timestamp('resource', 'abatementDateTime') }} as abated_at,
        {{ json_timestamp('resource', 'recordedDate') }} as recorded_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_conditions

)

select * from final
