with

cms122 as (

    select * from {{ ref('quality_cms122_hba1c_poor_control') }}

),

cms165 as (

    select * from {{ ref('quality_cms165_blood_pressure_control') }}

),

cms130 as (

    select * from {{ ref('quality_cms130_colorectal_screening') }}

),

measure_patients as (

    select
        measure_id,
        'Diabetes: Hemoglobin A1c (HbA1c) Poor Control (> 9%)' as measure_name,
        true as is_inverse_measure,
        source_system,
        organization_id,
        measurement_period_start,
        measurement_period_end,
        is_excluded,
        is_in_numerator
    from cms122
    union all
    select
        measure_id,
        'Controlling High Blood Pressure' as measure_name,
        false as is_inverse_measure,
        source_system,
        organization_id,
        measurement_period_start,
        measurement_period_end,
        is_excluded,
        is_in_numerator
    from cms165
    union all
    select
        measure_id,
        'Colorectal Cancer Screening' as measure_name,
        false as is_inverse_measure,
        source_system,
        organization_id,
        measurement_period_start,
        measurement_period_end,
        is_excluded,
        is_in_numerator
    from cms130

),

measure_counts as (

    select
        measure_id,
        measure_name,
        is_inverse_measure,
        source_system,
        organization_id,
        measurement_period_start,
        measurement_period_end,
        count(*) as initial_population_count,
        sum(case when is_excluded then 1 else 0 end) as denominator_exclusion_count,
        sum(case when is_in_numerator then 1 else 0 end) as numerator_count
    from measure_patients
    group by 1, 2, 3, 4, 5, 6, 7

),

final as (

    select
        ---------- grain
        cast(measure_id as varchar) as measure_id,
        cast(source_system as varchar) as source_system,
        cast(organization_id as varchar) as organization_id,

        ---------- measure
        cast(measure_name as varchar) as measure_name,
        cast(is_inverse_measure as boolean) as is_inverse_measure,
        cast(measurement_period_start as date) as measurement_period_start,
        cast(measurement_period_end as date) as measurement_period_end,

        ---------- counts (additive across organizations)
        cast(initial_population_count as bigint) as initial_population_count,
        cast(initial_population_count as bigint) as denominator_count,
        cast(denominator_exclusion_count as bigint) as denominator_exclusion_count,
        cast(numerator_count as bigint) as numerator_count,

        ---------- rate: numerator / (denominator - exclusions)
        cast(
            case
                when initial_population_count > denominator_exclusion_count
                    then numerator_count * 1.0 / (initial_population_count - denominator_exclusion_count)
            end as double
        ) as performance_rate
    from measure_counts

)

select * from final
