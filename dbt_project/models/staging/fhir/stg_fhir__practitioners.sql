with

source as (

    select * from {{ source('fhir', 'practitioner') }}

),

current_practitioners as (

    {{ fhir_current_versions('source') }}

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
        landing_file

    from current_practitioners

)

select * from final
