with

locations as (

    select * from {{ ref('stg_fhir__locations') }}

),

final as (

    select

        ---------- ids (natural keys: a directory of places of care, not patient data)
        {{ fhir_resource_key('source_system', 'location_id') }} as location_key,
        location_id,
        {{ fhir_resource_key('source_system', 'managing_organization_id') }} as managing_organization_key,
        {{ fhir_resource_key('source_system', 'parent_location_id') }} as parent_location_key,
        source_system,

        ---------- attributes
        location_name,
        location_status,
        location_mode,
        location_type_code,
        location_type_display,
        physical_type_code,

        ---------- geography
        address_line as street,
        address_city as city,
        address_state as state,
        address_postal_code as postal_code,
        address_country as country,
        latitude,
        longitude,

        ---------- record metadata
        last_updated_at

    from locations

)

select * from final
