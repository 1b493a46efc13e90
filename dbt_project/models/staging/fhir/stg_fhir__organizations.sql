{{
    config(
        unique_key='organization_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'organization'), 'organization_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'organization') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_organizations as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as organization_source_key,
        id as organization_id,
        source_system,
        {{ fhir_identifier('resource', var('npi_system')) }} as npi,

        ---------- references
        {{ fhir_reference('resource', 'partOf', 'id') }} as parent_organization_id,

        ---------- attributes
        {{ json_boolean('resource', 'active') }} as is_active,
        {{ json_string('resource', 'name') }} as organization_name,
        {{ fhir_codeable_concept('resource', 'type[0]', var('organization_type_system'), 'code') }}
            as organization_type_code,
        {{ fhir_codeable_concept('resource', 'type[0]', var('organization_type_system'), 'display') }}
            as organization_type_display,

        ---------- address (the first)
        {{ json_string('resource', 'address[0].line[0]') }} as address_line,
        {{ json_string('resource', 'address[0].city') }} as address_city,
        {{ json_string('resource', 'address[0].state') }} as address_state,
        {{ json_string('resource', 'address[0].postalCode') }} as address_postal_code,
        {{ json_string('resource', 'address[0].country') }} as address_country,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_organizations

)

select * from final
