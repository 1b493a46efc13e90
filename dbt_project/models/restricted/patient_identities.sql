with

patients as (

    select * from {{ ref('stg_fhir__patients') }}

),

final as (

    select

        ---------- ids
        {{ keyed_hash('patient_source_key') }} as patient_key,
        source_system,
        patient_id,

        ---------- identifiers
        mrn,
        ssn,

        ---------- name
        family_name,
        given_names,

        ---------- dates
        birth_date,

        ---------- address
        address_line,
        address_city,
        address_state,
        address_postal_code,
        address_country,

        ---------- record metadata
        last_updated_at

    from patients

)

select * from final
