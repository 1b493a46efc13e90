{{
    config(
        unique_key='observation_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'observation'), 'observation_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'observation') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_observations as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as observation_source_key,
        id as observation_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'subject', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'encounter', 'id') }} as encounter_id,

        ---------- codes
        {{ json_string('resource', 'status') }} as observation_status,
        {{ fhir_codeable_concept('resource', 'category[0]', var('observation_category_system'), 'code') }}
            as observation_category_code,
        {{ fhir_codeable_concept('resource', 'code', var('loinc_system'), 'code') }} as observation_code,
        {{ fhir_codeable_concept('resource', 'code', var('loinc_system'), 'system') }} as observation_system,
        {{ fhir_codeable_concept('resource', 'code', var('loinc_system'), 'display') }} as observation_display,
        {{ fhir_codeable_concept('resource', 'code', none, 'text') }} as observation_text,
        {{ fhir_codeable_concept('resource', 'code', none, 'codings') }} as observation_codings,

        ---------- value (valueQuantity, valueString, valueCodeableConcept)
        {{ fhir_quantity('resource', 'valueQuantity', 'value') }} as value_quantity,
        {{ fhir_quantity('resource', 'valueQuantity', 'unit') }} as value_unit,
        {{ fhir_quantity('resource', 'valueQuantity', 'code') }} as value_unit_code,
        {{ fhir_quantity('resource', 'valueQuantity', 'system') }} as value_unit_system,
        {{ json_string('resource', 'valueString') }} as value_string,
        {{ fhir_codeable_concept('resource', 'valueCodeableConcept', none, 'code') }} as value_concept_code,
        {{ fhir_codeable_concept('resource', 'valueCodeableConcept', none, 'system') }} as value_concept_system,
        {{ fhir_codeable_concept('resource', 'valueCodeableConcept', none, 'display') }} as value_concept_display,

        ---------- timestamps (UTC)
        coalesce(
            {{ json_timestamp('resource', 'effectiveDateTime') }},
            {{ fhir_period('resource', 'effectivePeriod', 'start') }}
        ) as effective_at,
        {{ json_timestamp('resource', 'issued') }} as issued_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_observations

)

select * from final
