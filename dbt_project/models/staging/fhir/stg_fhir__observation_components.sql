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

components as (

    select
        current_observations.source_system,
        current_observations.id,
        current_observations.resource,
        current_observations.version_id,
        current_observations.last_updated,
        current_observations._dlt_load_id,
        {{ flattened_index('observation_components') }} as component_index,
        {{ flattened_value('observation_components') }} as component
    from current_observations
    {{ flatten_json_array('current_observations.resource', 'component', 'observation_components') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} || '|' || cast(component_index as varchar)
            as observation_component_source_key,
        {{ fhir_resource_key('source_system', 'id') }} as observation_source_key,
        id as observation_id,
        component_index,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'subject', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'encounter', 'id') }} as encounter_id,

        ---------- codes (status and category are the parent observation's)
        {{ json_string('resource', 'status') }} as observation_status,
        {{ fhir_codeable_concept('resource', 'category[0]', var('observation_category_system'), 'code') }}
            as observation_category_code,
        {{ fhir_codeable_concept('component', 'code', var('loinc_system'), 'code') }} as component_code,
        {{ fhir_codeable_concept('component', 'code', var('loinc_system'), 'system') }} as component_system,
        {{ fhir_codeable_concept('component', 'code', var('loinc_system'), 'display') }} as component_display,

        ---------- value
        {{ fhir_quantity('component', 'valueQuantity', 'value') }} as value_quantity,
        {{ fhir_quantity('component', 'valueQuantity', 'unit') }} as value_unit,
        {{ fhir_quantity('component', 'valueQuantity', 'code') }} as value_unit_code,
        {{ fhir_quantity('component', 'valueQuantity', 'system') }} as value_unit_system,
        {{ fhir_codeable_concept('component', 'valueCodeableConcept', none, 'code') }} as value_concept_code,
        {{ fhir_codeable_concept('component', 'valueCodeableConcept', none, 'display') }} as value_concept_display,

        ---------- timestamps (UTC)
        coalesce(
            {{ json_timestamp('resource', 'effectiveDateTime') }},
            {{ fhir_period('resource', 'effectivePeriod', 'start') }}
        ) as effective_at,
        {{ json_timestamp('resource', 'issued') }} as issued_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        _dlt_load_id

    from components

)

select * from final
