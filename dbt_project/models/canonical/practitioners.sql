with

practitioners as (

    select * from {{ ref('stg_fhir__practitioners') }}

),

final as (

    select

        ---------- ids (natural keys: a directory of clinicians, not patient data)
        {{ fhir_resource_key('source_system', 'practitioner_id') }} as practitioner_key,
        practitioner_id,
        source_system,
        npi,

        ---------- attributes
        nullif(trim(coalesce(given_names, '') || ' ' || coalesce(family_name, '')), '') as practitioner_name,
        gender_code,
        qualification_code,
        qualification_display,
        coalesce(is_active, true) as is_active,

        ---------- geography (city and state only)
        address_city as city,
        address_state as state,

        ---------- record metadata
        last_updated_at

    from practitioners

)

select * from final
