{%- set period_start = measurement_period('start') -%}
{%- set period_end = measurement_period('end') -%}

with

population as (

    select * from {{ ref('quality_measure_population') }}

),

observations as (

    select * from {{ ref('observations') }}

),

measure_codes as (

    select * from {{ ref('quality_measure_codes') }}

),

initial_population as (

    -- patients 18-75 at the end of the period, with diabetes and a visit in the period
    select *
    from population
    where
        has_diabetes
        and qualifying_visit_count > 0
        and age_at_period_end between 18 and 75

),

hba1c_results as (

    select
        observations.patient_key,
        observations.effective_date,
        observations.value_as_number,
        row_number() over (
            partition by observations.patient_key
            order by observations.effective_at desc, observations.observation_key desc
        ) as result_recency
    from observations
    inner join measure_codes
        on
            measure_codes.value_set = 'hba1c_laboratory_test'
            and observations.observation_code = measure_codes.code
    where
        observations.effective_date between {{ period_start }} and {{ period_end }}
        and coalesce(observations.observation_status, 'unknown') in ('final', 'amended', 'corrected')

),

last_hba1c as (

    select *
    from hba1c_results
    where result_recency = 1

),

patients_measured as (

    select
        initial_population.*,
        last_hba1c.effective_date as last_hba1c_date,
        last_hba1c.value_as_number as last_hba1c_percent,
        case
            when initial_population.has_hospice_care then 'hospice'
            when initial_population.age_at_period_end >= 66 and initial_population.lives_in_long_term_care
                then 'long_term_care'
        end as exclusion_reason
    from initial_population
    left join last_hba1c
        on initial_population.patient_key = last_hba1c.patient_key

),

final as (

    select
        ---------- measure
        cast('CMS122v12' as varchar) as measure_id,

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
        -- inverse measure: poor control = most recent HbA1c > 9.0 %, or none / no value in the period
        cast(
            exclusion_reason is null and coalesce(last_hba1c_percent > 9.0, true) as boolean
        ) as is_in_numerator,

        ---------- evidence
        cast(last_hba1c_date as date) as last_hba1c_date,
        cast(last_hba1c_percent as double) as last_hba1c_percent
    from patients_measured

)

select * from final
