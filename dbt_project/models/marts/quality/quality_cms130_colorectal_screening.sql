{%- set period_start = measurement_period('start') -%}
{%- set period_end = measurement_period('end') -%}

with

population as (

    select * from {{ ref('quality_measure_population') }}

),

procedures as (

    select * from {{ ref('procedures') }}

),

measure_codes as (

    select * from {{ ref('quality_measure_codes') }}

),

initial_population as (

    -- patients 46-75 at the end of the period with a visit in the period
    select *
    from population
    where
        qualifying_visit_count > 0
        and age_at_period_end between 46 and 75

),

colonoscopies as (

    -- completed colonoscopies in the period or the nine years before it
    select
        procedures.patient_key,
        max(procedures.performed_date) as last_colonoscopy_date
    from procedures
    inner join measure_codes
        on
            measure_codes.value_set = 'colonoscopy'
            and procedures.procedure_code = measure_codes.code
    where
        procedures.is_completed
        and procedures.performed_date between {{ dbt.dateadd('year', -9, period_start) }} and {{ period_end }}
    group by 1

),

patients_measured as (

    select
        initial_population.*,
        colonoscopies.last_colonoscopy_date,
        case
            when initial_population.has_hospice_care then 'hospice'
            when initial_population.has_colorectal_cancer_or_colectomy then 'colorectal_cancer_or_colectomy'
            when initial_population.age_at_period_end >= 66 and initial_population.lives_in_long_term_care
                then 'long_term_care'
        end as exclusion_reason
    from initial_population
    left join colonoscopies
        on initial_population.patient_key = colonoscopies.patient_key

),

final as (

    select
        ---------- measure
        cast('CMS130v12' as varchar) as measure_id,

        ---------- ids
        cast(patient_key as varchar) as patient_key,
        cast(source_system as varchar) as source_system,
        cast(coalesce(attributed_organization_id, 'unknown') as varchar) as organization_id,

        ---------- period
        cast(measurement_period_start as date) as measurement_period_start,
        cast(measurement_period_end as date) as measurement_period_end,
        cast(age_at_period_end as integer) as age_at_period_end,

        ---------- populations (every row is in the initial population and the denominator)
        cast(exclusion_reason is not null as boolean) as is_excluded,
        cast(exclusion_reason as varchar) as exclusion_reason,
        cast(exclusion_reason is null and last_colonoscopy_date is not null as boolean) as is_in_numerator,

        ---------- evidence
        cast(last_colonoscopy_date as date) as last_colonoscopy_date
    from patients_measured

)

select * from final
