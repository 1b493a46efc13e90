with

encounters as (

    select * from {{ ref('encounters') }}

),

reportable_encounters as (

    -- future-dated encounters and encounters without a start are data errors, not volume
    select
        *,
        coalesce(encounter_class_code, 'unknown') as volume_class_code,
        coalesce(organization_id, 'unknown') as volume_organization_id,
        coalesce(location_id, 'unknown') as volume_location_id
    from encounters
    where
        started_at is not null
        and started_at <= {{ as_of_timestamp() }}

),

monthly_volume as (

    select
        cast({{ dbt.date_trunc('month', 'started_at') }} as date) as month_start_date,
        source_system,
        volume_class_code as encounter_class_code,
        volume_organization_id as organization_id,
        volume_location_id as location_id,
        {{ encounter_volume_measures() }}
    from reportable_encounters
    group by 1, 2, 3, 4, 5

),

final as (

    select
        ---------- grain
        cast(month_start_date as date) as month_start_date,
        cast(source_system as varchar) as source_system,
        cast(encounter_class_code as varchar) as encounter_class_code,
        cast(organization_id as varchar) as organization_id,
        cast(location_id as varchar) as location_id,

        ---------- measures
        cast(encounter_count as bigint) as encounter_count,
        cast(patient_count as bigint) as patient_count,
        cast(inpatient_encounter_count as bigint) as inpatient_encounter_count,
        cast(emergency_encounter_count as bigint) as emergency_encounter_count,
        cast(inpatient_days as bigint) as inpatient_days,
        cast(avg_length_of_stay_hours as double) as avg_length_of_stay_hours,
        cast(invalid_period_count as bigint) as invalid_period_count
    from monthly_volume

)

select * from final
