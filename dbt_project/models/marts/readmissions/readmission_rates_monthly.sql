with

index_stays as (

    select * from {{ ref('readmission_index_stays') }}

),

monthly_rates as (

    select
        discharge_month,
        source_system,
        organization_id,
        count(*) as discharge_count,
        sum(case when exclusion_reason = 'in_hospital_death' then 1 else 0 end) as excluded_death_count,
        sum(case when exclusion_reason = 'transfer' then 1 else 0 end) as excluded_transfer_count,
        sum(case when exclusion_reason = 'same_day_readmission' then 1 else 0 end) as excluded_same_day_count,
        sum(
            case when exclusion_reason = 'incomplete_follow_up' then 1 else 0 end
        ) as excluded_incomplete_follow_up_count,
        sum(
            case
                when
                    exclusion_reason not in (
                        'in_hospital_death', 'transfer', 'same_day_readmission', 'incomplete_follow_up'
                    )
                    then 1
                else 0
            end
        ) as excluded_other_count,
        sum(case when is_index_stay then 1 else 0 end) as index_stay_count,
        sum(case when is_readmitted then 1 else 0 end) as readmission_count
    from index_stays
    group by 1, 2, 3

),

final as (

    select
        ---------- grain
        cast(discharge_month as date) as discharge_month,
        cast(source_system as varchar) as source_system,
        cast(organization_id as varchar) as organization_id,

        ---------- counts (additive)
        cast(discharge_count as bigint) as discharge_count,
        cast(excluded_death_count as bigint) as excluded_death_count,
        cast(excluded_transfer_count as bigint) as excluded_transfer_count,
        cast(excluded_same_day_count as bigint) as excluded_same_day_count,
        cast(excluded_incomplete_follow_up_count as bigint) as excluded_incomplete_follow_up_count,
        cast(excluded_other_count as bigint) as excluded_other_count,
        cast(index_stay_count as bigint) as index_stay_count,
        cast(readmission_count as bigint) as readmission_count,

        ---------- rate (not additive: re-derive from the counts when rolling up)
        cast(
            case when index_stay_count > 0 then readmission_count * 1.0 / index_stay_count end as double
        ) as readmission_rate
    from monthly_rates

)

select * from final
