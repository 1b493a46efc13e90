{%- set period_start = measurement_period('start') -%}
{%- set period_end = measurement_period('end') -%}

with

population as (

    select * from {{ ref('quality_measure_population') }}

),

observations as (

    select * from {{ ref('observations') }}

),

encounters as (

    select * from {{ ref('encounters') }}

),

measure_codes as (

    select * from {{ ref('quality_measure_codes') }}

),

initial_population as (

    -- patients 18-85 at the end of the period, with essential hypertension starting before or in
    -- the first six months of the period, and a visit in the period
    select *
    from population
    where
        has_essential_hypertension
        and qualifying_visit_count > 0
        and age_at_period_end between 18 and 85

),

blood_pressure_readings as (

    -- systolic / diastolic values in the period, not taken during an inpatient stay or ED visit
    select
        observations.patient_key,
        observations.effective_date,
        measure_codes.value_set,
        observations.value_as_number
    from observations
    inner join measure_codes
        on
            measure_codes.value_set in ('systolic_blood_pressure', 'diastolic_blood_pressure')
            and observations.observation_code = measure_codes.code
    left join encounters
        on observations.encounter_key = encounters.encounter_key
    where
        observations.effective_date between {{ period_start }} and {{ period_end }}
        and observations.value_as_number is not null
        and coalesce(observations.observation_status, 'unknown') in ('final', 'amended', 'corrected')
        and not coalesce(encounters.is_inpatient or encounters.is_emergency, false)

),

daily_lowest_readings as (

    -- several readings on one day: the lowest systolic and the lowest diastolic represent it
    select
        patient_key,
        effective_date,
        min(case when value_set = 'systolic_blood_pressure' then value_as_number end) as systolic_mmhg,
        min(case when value_set = 'diastolic_blood_pressure' then value_as_number end) as diastolic_mmhg
    from blood_pressure_readings
    group by 1, 2

),

reading_days_ranked as (

    select
        *,
        row_number() over (
            partition by patient_key
            order by effective_date desc
        ) as day_recency
    from daily_lowest_readings
    where
        systolic_mmhg is not null
        and diastolic_mmhg is not null

),

last_reading_day as (

    select *
    from reading_days_ranked
    where day_recency = 1

),

patients_measured as (

    select
        initial_population.*,
        last_reading_day.effective_date as last_blood_pressure_date,
        last_reading_day.systolic_mmhg as last_systolic_mmhg,
        last_reading_day.diastolic_mmhg as last_diastolic_mmhg,
        case
            when initial_population.has_hospice_care then 'hospice'
            when initial_population.has_esrd_dialysis_or_kidney_transplant then 'esrd_dialysis_or_kidney_transplant'
            when initial_population.age_at_period_end >= 66 and initial_population.lives_in_long_term_care
                then 'long_term_care'
        end as exclusion_reason
    from initial_population
    left join last_reading_day
        on initial_population.patient_key = last_reading_day.patient_key

),

final as (

    select
        ---------- measure
        cast('CMS165v12' as varchar) as measure_id,

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
        -- controlled: the most recent day's lowest reading is < 140 systolic and < 90 diastolic;
        -- no reading in the period counts as not controlled
        cast(
            exclusion_reason is null
            and coalesce(last_systolic_mmhg < 140 and last_diastolic_mmhg < 90, false)
            as boolean
        ) as is_in_numerator,

        ---------- evidence
        cast(last_blood_pressure_date as date) as last_blood_pressure_date,
        cast(last_systolic_mmhg as double) as last_systolic_mmhg,
        cast(last_diastolic_mmhg as double) as last_diastolic_mmhg
    from patients_measured

)

select * from final
