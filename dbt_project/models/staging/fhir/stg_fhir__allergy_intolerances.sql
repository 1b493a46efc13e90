{{
    config(
        unique_key='allergy_intolerance_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'allergy_intolerance'), 'allergy_intolerance_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'allergy_intolerance') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_allergy_intolerances as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as allergy_intolerance_source_key,
        id as allergy_intolerance_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'patient', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'encounter', 'id') }} as encounter_id,
        {{ fhir_reference('resource', 'recorder', 'id') }} as recorder_id,

        ---------- codes
        {{ fhir_codeable_concept('resource', 'clinicalStatus', var('allergy_clinical_system'), 'code') }}
            as clinical_status_code,
        {{ fhir_codeable_concept('resource', 'verificationStatus', var('allergy_verification_system'), 'code') }}
            as verification_status_code,
        {{ json_string('resource', 'type') }} as allergy_type,
        {{ json_string('resource', 'category[0]') }} as allergy_category,
        {{ json_string('resource', 'criticality') }} as criticality,
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'code') }} as allergen_code,
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'system') }} as allergen_system,
        {{ fhir_codeable_concept('resource', 'code', var('snomed_system'), 'display') }} as allergen_display,
        {{ fhir_codeable_concept('resource', 'code', none, 'text') }} as allergen_text,
        {{ fhir_codeable_concept('resource', 'code', var('rxnorm_system'), 'code') }} as allergen_rxnorm_code,
        {{ fhir_codeable_concept('resource', 'code', none, 'codings') }} as allergen_codings,

        ---------- first reaction
        {{ fhir_codeable_concept('resource', 'reaction[0].manifestation[0]', var('snomed_system'), 'code') }}
            as reaction_code,
        {{ fhir_codeable_concept('resource', 'reaction[0].manifestation[0]', var('snomed_system'), 'display') }}
            as reaction_display,
        {{ json_string('resource', 'reaction[0].severity') }} as reaction_severity,

        ---------- timestamps (UTC)
        {{ json_timestamp('resource', 'onsetDateTime') }} as onset_at,
        {{ json_timestamp('resource', 'recordedDate') }} as recorded_at,
        {{ json_timestamp('resource', 'lastOccurrence') }} as last_occurred_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_allergy_intolerances

)

select * from final
