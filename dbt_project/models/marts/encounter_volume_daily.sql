with

encounters as (

    select * from {{ ref('encounters') }}

),

reportable_encounters as (

    -- future-dated encounters and encounters without a start are data errors, not volume
    select *
    from encounters
    where
        started_at is not null
        and started_at <= {{ as_of_timestamp() }}

),

daily_volume as (

    select
        start_date as encounter_date,
        source_system,
        coalesce(encounter_class_code, 'unknown') as encounter_class_code,
        coalesce(organization_id, 'unknown') as organization_id,
        count(*) as encounter_count,
        count(distinct patient_key) as patient_count,
        sum(case when is_inpatient then 1 else 0 end) as inpatient_encounter_count,
        sum(case when is_emergency then 1 else 0 end) as emergency_encounter_count,
        sum(coalesce(inpatient_days, 0)) as inpatient_days,
        avg(length_of_stay_hours) as avg_length_of_stay_hours,
        sum(case when has_valid_period then 0 else 1 end) as invalid_period_count
    from reportable_encounters
    group by 1, 2, 3, 4

),

final as (

    select
        ---------- grain
        cast(encounter_date as date) as encounter_date,
        cast(source_system as varchar) as source_system,
        cast(encounter_class_code as varchar) as encounter_class_code,
        cast(organization_id as varchar) as organization_id,

        ---------- measures
        cast(encounter_count as bigint) as encounter_count,
        cast(patient_count as bigint) as patient_count,
        cast(inpatient_encounter_count as bigint) as inpatient_encounter_count,
        cast(emergency_encounter_count as bigint) as emergency_encounter_count,
        cast(inpatient_days as bigint) as inpatient_days,
        cast(avg_length_of_stay_hours as double) as avg_length_of_stay_hours,
        cast(invalid_period_count as bigint) as invalid_period_count
    from daily_volume

)

select * from final
