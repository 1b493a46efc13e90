{{
    config(
        unique_key='practitioner_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'practitioner'), 'practitioner_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'practitioner') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_practitioners as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as practitioner_source_key,
        id as practitioner_id,
        source_system,
        {{ fhir_identifier('resource', var('npi_system')) }} as npi,

        ---------- attributes (a clinician's professional details, not patient data)
        {{ json_boolean('resource', 'active') }} as is_active,
        {{ fhir_human_name('resource', 'name', 'official', 'family') }} as family_name,
        {{ fhir_human_name('resource', 'name', 'official', 'given') }} as given_names,
        {{ json_string('resource', 'gender') }} as gender_code,
        {{ fhir_codeable_concept('resource', 'qualification[0].code', none, 'code') }} as qualification_code,
        {{ fhir_codeable_concept('resource', 'qualification[0].code', none, 'display') }} as qualification_display,

        ---------- address (the first; city and state only)
        {{ json_string('resource', 'address[0].city') }} as address_city,
        {{ json_string('resource', 'address[0].state') }} as address_state,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_practitioners

)

select * from final
