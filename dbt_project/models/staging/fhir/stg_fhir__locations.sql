{{
    config(
        unique_key='location_source_key',
        pre_hook="{{ fhir_delete_changed_resources(source('fhir', 'location'), 'location_source_key') }}",
    )
}}

with

source as (

    select * from {{ source('fhir', 'location') }}

),

loaded_since_last_build as (

    select * from source
    {% if is_incremental() %}
        where {{ fhir_loaded_since_last_build() }}
    {% endif %}

),

current_locations as (

    {{ fhir_current_versions('loaded_since_last_build') }}

),

final as (

    select

        ---------- ids
        {{ fhir_resource_key('source_system', 'id') }} as location_source_key,
        id as location_id,
        source_system,

        ---------- references
        {{ fhir_reference('resource', 'managingOrganization', 'id') }} as managing_organization_id,
        {{ fhir_reference('resource', 'partOf', 'id') }} as parent_location_id,

        ---------- attributes
        {{ json_string('resource', 'status') }} as location_status,
        {{ json_string('resource', 'name') }} as location_name,
        {{ json_string('resource', 'mode') }} as location_mode,
        {{ fhir_codeable_concept('resource', 'type[0]', var('location_type_system'), 'code') }}
            as location_type_code,
        {{ fhir_codeable_concept('resource', 'type[0]', var('location_type_system'), 'display') }}
            as location_type_display,
        {{ fhir_codeable_concept('resource', 'physicalType', var('location_physical_type_system'), 'code') }}
            as physical_type_code,

        ---------- address and position
        {{ json_string('resource', 'address.line[0]') }} as address_line,
        {{ json_string('resource', 'address.city') }} as address_city,
        {{ json_string('resource', 'address.state') }} as address_state,
        {{ json_string('resource', 'address.postalCode') }} as address_postal_code,
        {{ json_string('resource', 'address.country') }} as address_country,
        {{ json_number('resource', 'position.latitude') }} as latitude,
        {{ json_number('resource', 'position.longitude') }} as longitude,

        ---------- record metadata
        version_id,
        {{ to_utc_timestamp('last_updated') }} as last_updated_at,
        {{ to_utc_timestamp('fetched_at') }} as fetched_at,
        landing_file,
        _dlt_load_id

    from current_locations

)

select * from final
