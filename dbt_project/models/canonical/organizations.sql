with

organizations as (

    select * from {{ ref('stg_fhir__organizations') }}

),

final as (

    select

        ---------- ids (natural keys: a directory of organizations, not patient data)
        {{ fhir_resource_key('source_system', 'organization_id') }} as organization_key,
        organization_id,
        {{ fhir_resource_key('source_system', 'parent_organization_id') }} as parent_organization_key,
        source_system,
        npi,

        ---------- attributes
        organization_name,
        organization_type_code,
        organization_type_display,
        coalesce(is_active, true) as is_active,

        ---------- geography (the organization's first address)
        address_line as street,
        address_city as city,
        address_state as state,
        address_postal_code as postal_code,
        address_country as country,

        ---------- record metadata
        last_updated_at

    from organizations

)

select * from final
