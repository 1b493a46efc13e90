-- A jump in a resource type's reject rate (quarantined / received) or duplicate rate (landed but
-- unchanged / landed) in its latest sync, against the average of its previous syncs.

with

metrics as (

    select * from {{ ref('stg_fhir__run_metrics') }}

),

type_syncs as (

    select
        source_system,
        resource_type,
        run_id,
        cast(resources_quarantined as double)
        / nullif(resources_landed + resources_quarantined, 0) as reject_rate,
        cast(resources_unchanged as double) / nullif(resources_landed, 0) as duplicate_rate,
        row_number() over (
            partition by source_system, resource_type
            order by run_started_at desc, run_id desc
        ) as sync_rank
    from metrics
    where
        resource_type != '(untyped)'
        and type_status in ('succeeded', 'paused')
        and resources_landed + resources_quarantined > 0

),

rates as (

    select
        source_system,
        resource_type,
        run_id,
        sync_rank,
        'reject_rate' as rate_name,
        reject_rate as rate
    from type_syncs

    union all

    select
        source_system,
        resource_type,
        run_id,
        sync_rank,
        'duplicate_rate' as rate_name,
        duplicate_rate as rate
    from type_syncs

),

baselines as (

    select
        source_system,
        resource_type,
        rate_name,
        count(*) as history_runs,
        avg(rate) as baseline_rate
    from rates
    where
        sync_rank between 2 and {{ var('alert_history_runs', 10) }} + 1
        and rate is not null
    group by 1, 2, 3

),

latest_compared_to_baseline as (

    select
        rates.source_system,
        rates.resource_type,
        rates.run_id,
        rates.rate_name,
        rates.rate,
        baselines.baseline_rate,
        baselines.history_runs
    from rates
    inner join baselines
        on
            rates.source_system = baselines.source_system
            and rates.resource_type = baselines.resource_type
            and rates.rate_name = baselines.rate_name
    where
        rates.sync_rank = 1
        and baselines.history_runs >= {{ var('alert_min_history_runs', 3) }}
        and rates.rate > {{ var('alert_rate_jump_factor', 2.0) }} * baselines.baseline_rate
        and rates.rate - baselines.baseline_rate >= {{ var('alert_rate_jump_min_increase', 0.05) }}

),

final as (

    select
        case rate_name
            when 'reject_rate' then 'reject_rate_jump'
            else 'duplicate_rate_jump'
        end as alert_kind,
        source_system,
        resource_type,
        run_id,
        rate as observed_value,
        baseline_rate as threshold,
        replace(rate_name, '_', ' ') || ' of ' || resource_type || ' from ' || source_system
        || ' jumped to ' || cast(round(rate, 3) as varchar) || ' in its latest sync (average '
        || cast(round(baseline_rate, 3) as varchar) || ' over the previous '
        || cast(history_runs as varchar) || ')' as message
    from latest_compared_to_baseline

)

select * from final
