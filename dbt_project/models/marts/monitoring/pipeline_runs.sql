with

load_runs as (

    select * from {{ ref('stg_fhir__load_runs') }}

),

landing_manifest as (

    select * from {{ ref('stg_fhir__landing_manifest') }}

),

quarantine as (

    select * from {{ ref('stg_fhir__quarantine') }}

),

request_log as (

    select * from {{ ref('stg_fhir__request_log') }}

),

landed_by_run as (

    select
        run_id,
        count(*) as landing_file_count,
        sum(resource_count) as landed_resource_count,
        sum(size_bytes) as landed_bytes,
        count(distinct resource_type) as resource_type_count
    from landing_manifest
    group by 1

),

quarantined_by_run as (

    select
        run_id,
        count(*) as quarantined_row_count,
        count(distinct reject_reason) as reject_reason_count
    from quarantine
    group by 1

),

requests_by_run as (

    select
        run_id,
        count(*) as request_count,
        sum(case when attempt > 1 then 1 else 0 end) as retry_count,
        sum(case when http_status = 429 then 1 else 0 end) as rate_limited_count,
        sum(case when http_status >= 500 then 1 else 0 end) as server_error_count,
        sum(case when outcome = 'failed' then 1 else 0 end) as failed_request_count,
        avg(latency_ms) as avg_latency_ms,
        max(latency_ms) as max_latency_ms,
        sum(response_bytes) as response_bytes
    from request_log
    group by 1

),

runs_timed as (

    select
        *,
        {{ dbt.datediff('started_at', 'finished_at', 'millisecond') }}
        / 1000.0 as duration_seconds
    from load_runs

),

runs_joined as (

    select
        runs_timed.*,
        landed_by_run.landing_file_count,
        landed_by_run.landed_resource_count,
        landed_by_run.landed_bytes,
        landed_by_run.resource_type_count,
        quarantined_by_run.quarantined_row_count,
        quarantined_by_run.reject_reason_count,
        requests_by_run.request_count,
        requests_by_run.retry_count,
        requests_by_run.rate_limited_count,
        requests_by_run.server_error_count,
        requests_by_run.failed_request_count,
        requests_by_run.avg_latency_ms,
        requests_by_run.max_latency_ms,
        requests_by_run.response_bytes
    from runs_timed
    left join landed_by_run
        on runs_timed.run_id = landed_by_run.run_id
    left join quarantined_by_run
        on runs_timed.run_id = quarantined_by_run.run_id
    left join requests_by_run
        on runs_timed.run_id = requests_by_run.run_id

),

final as (

    select
        ---------- ids
        cast(run_id as varchar) as run_id,
        cast(source_system as varchar) as source_system,

        ---------- attributes
        cast(command as varchar) as command,
        cast(run_status as varchar) as run_status,
        cast(coalesce(run_status in ('failed', 'partially_failed'), false) as boolean) as is_failed,
        cast(error_message as varchar) as error_message,

        ---------- provenance (which credential and code; never a secret)
        cast(credential_client_id as varchar) as credential_client_id,
        cast(resource_types as varchar) as resource_types,
        cast(code_version as varchar) as code_version,
        cast(code_commit as varchar) as code_commit,

        ---------- timestamps (UTC)
        cast(started_at as timestamp) as started_at,
        cast(finished_at as timestamp) as finished_at,
        cast(duration_seconds as double) as duration_seconds,

        ---------- rows (loader counters)
        cast(files_read as bigint) as files_read,
        cast(resources_read as bigint) as resources_read,
        cast(resources_landed as bigint) as resources_landed,
        cast(resources_merged as bigint) as resources_merged,
        cast(resources_unchanged as bigint) as resources_unchanged,
        cast(resources_quarantined as bigint) as resources_quarantined,
        cast(
            case when resources_read > 0 then resources_quarantined * 1.0 / resources_read end as double
        ) as reject_rate,

        ---------- landing zone (landing_manifest)
        cast(coalesce(landing_file_count, 0) as bigint) as landing_file_count,
        cast(coalesce(landed_resource_count, 0) as bigint) as landed_resource_count,
        cast(coalesce(landed_bytes, 0) as bigint) as landed_bytes,
        cast(coalesce(resource_type_count, 0) as bigint) as resource_type_count,

        ---------- rejects (quarantine)
        cast(coalesce(quarantined_row_count, 0) as bigint) as quarantined_row_count,
        cast(coalesce(reject_reason_count, 0) as bigint) as reject_reason_count,

        ---------- HTTP (request_log; zero for file loads)
        cast(coalesce(request_count, 0) as bigint) as request_count,
        cast(coalesce(retry_count, 0) as bigint) as retry_count,
        cast(coalesce(rate_limited_count, 0) as bigint) as rate_limited_count,
        cast(coalesce(server_error_count, 0) as bigint) as server_error_count,
        cast(coalesce(failed_request_count, 0) as bigint) as failed_request_count,
        cast(avg_latency_ms as double) as avg_latency_ms,
        cast(max_latency_ms as double) as max_latency_ms,
        cast(coalesce(response_bytes, 0) as bigint) as response_bytes
    from runs_joined

)

select * from final
