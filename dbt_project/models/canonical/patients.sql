with

patients as (

    select * from {{ ref('stg_fhir__patients') }}

),

patients_with_age as (

    select
        *,
        cast(deceased_at as date) as deceased_date,
        -- age today, or at death for deceased patients
        {{ age_in_years('birth_date', 'coalesce(cast(deceased_at as date), current_date)') }} as age_years
    from patients

),

final as (

    select

        ---------- ids (keyed hash only; identities live in restricted.patient_identities)
        {{ keyed_hash('patient_source_key') }} as patient_key,
        source_system,

        ---------- demographics
        gender_code,
        -- HIPAA safe harbor aggregates ages over 89, so their birth year is suppressed
        case
            when age_years < 90 then cast(extract(year from birth_date) as integer)
        end as birth_year,
        case
            when age_years is null then null
            when age_years < 18 then '0-17'
            when age_years < 35 then '18-34'
            when age_years < 50 then '35-49'
            when age_years < 65 then '50-64'
            when age_years < 80 then '65-79'
            when age_years < 90 then '80-89'
            else '90+'
        end as age_band,
        is_deceased,
        deceased_date,
        race_code,
        race_display,
        ethnicity_code,
        ethnicity_display,

        ---------- geography (state and 3-digit ZIP only)
        address_state as state,
        left(address_postal_code, 3) as zip3,

        ---------- record metadata
        last_updated_at

    from patients_with_age

)

select * from final
