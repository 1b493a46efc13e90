{{
    config(
        unique_key='coverage_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'coverage'), 'coverage_source_key') }}",
    )
}}

with

source as (

    {{ fhir_optional_source(source('fhir', 'coverage')) }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_coverages as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as coverage_source_key,
        id as coverage_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'beneficiary', 'id') }} as patient_id,
        {{ fhir_reference('resource', 'subscriber', 'id') }} as subscriber_patient_id,
        {{ fhir_reference('resource', 'subscriber', 'type') }} as subscriber_type,
        {{ fhir_reference('resource', 'payor[0]', 'id') }} as payor_id,
        {{ fhir_reference('resource', 'payor[0]', 'type') }} as payor_type,

        ---------- codes
        {{ json_string('resource', 'status') }} as coverage_status,
        {{ fhir_codeable_concept('resource', 'type', var('coverage_type_system'), 'code') }} as coverage_type_code,
        {{ fhir_codeable_concept('resource', 'type', var('coverage_type_system'), 'display') }}
            as coverage_type_display,
        {{ fhir_codeable_concept('resource', 'type', none, 'text') }} as coverage_type_text,
        {{ fhir_codeable_concept('resource', 'type', none, 'codings') }} as coverage_type_codings,
        {{ fhir_codeable_concept('resource', 'relationship', var('subscriber_relationship_system'), 'code') }}
            as relationship_code,

        ---------- plan (Coverage.class entries of type group and plan)
        {{ json_string(json_array_find('resource', 'class', 'type.coding[0].code', 'group'), 'value') }}
            as group_value,
        {{ json_string(json_array_find('resource', 'class', 'type.coding[0].code', 'group'), 'name') }}
            as group_name,
        {{ json_string(json_array_find('resource', 'class', 'type.coding[0].code', 'plan'), 'value') }}
            as plan_value,
        {{ json_string(json_array_find('resource', 'class', 'type.coding[0].code', 'plan'), 'name') }}
            as plan_name,
        {{ json_string('resource', 'network') }} as network,
        {{ json_integer('resource', 'order') }} as coverage_order,

        ---------- member identifiers (PHI)
        {{ json_string('resource', 'subscriberId') }} as subscriber_member_id,
        {{ json_string('resource', 'dependent') }} as dependent_number,

        ---------- timestamps (UTC)
        {{ fhir_period('resource', 'period', 'start') }} as period_started_at,
        {{ fhir_period('resource', 'period', 'end') }} as period_ended_at,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_coverages

)

select * from final
