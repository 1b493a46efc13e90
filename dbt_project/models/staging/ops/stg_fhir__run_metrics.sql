{%- set columns = [
    ['run_id', 'varchar'],
    ['source_system', 'varchar'],
    ['command', 'varchar'],
    ['resource_type', 'varchar'],
    ['status', 'varchar'],
    ['run_status', 'varchar'],
    ['started_at', 'timestamp with time zone'],
    ['finished_at', 'timestamp with time zone'],
    ['duration_seconds', 'double'],
    ['requests', 'bigint'],
    ['retries', 'bigint'],
    ['http_429', 'bigint'],
    ['http_5xx', 'bigint'],
    ['failed_requests', 'bigint'],
    ['token_refreshes', 'bigint'],
    ['pages', 'bigint'],
    ['response_bytes', 'bigint'],
    ['latency_p50_ms', 'double'],
    ['latency_p95_ms', 'double'],
    ['latency_p99_ms', 'double'],
    ['latency_max_ms', 'double'],
    ['resources_received', 'bigint'],
    ['resources_landed', 'bigint'],
    ['resources_merged', 'bigint'],
    ['resources_unchanged', 'bigint'],
    ['resources_quarantined', 'bigint'],
    ['drift_findings', 'bigint'],
    ['warehouse_seconds', 'double'],
    ['requests_per_1k_resources', 'double'],
    ['warehouse_seconds_per_1k_resources', 'double'],
    ['estimated_cost_per_1k_resources', 'double'],
    ['stopped_by_budget', 'boolean'],
] -%}

with

source as (

    {{ loader_optional_source(source('fhir', 'run_metrics'), columns) }}

),

renamed as (

    select
        -- ids
        run_id,
        source_system,
        resource_type,
        command,

        -- outcome
        status as type_status,
        run_status,
        coalesce(stopped_by_budget, false) as is_stopped_by_budget,

        -- dates
        {{ fhir_elt.to_utc_timestamp('started_at') }} as run_started_at,
        {{ fhir_elt.to_utc_timestamp('finished_at') }} as run_finished_at,

        -- requests
        requests,
        retries,
        http_429 as rate_limited_requests,
        http_5xx as server_error_requests,
        failed_requests,
        token_refreshes,
        pages,
        response_bytes,
        latency_p50_ms,
        latency_p95_ms,
        latency_p99_ms,
        latency_max_ms,

        -- resources
        resources_received,
        resources_landed,
        resources_merged,
        resources_unchanged,
        resources_quarantined,
        drift_findings,

        -- cost
        duration_seconds,
        warehouse_seconds,
        requests_per_1k_resources,
        warehouse_seconds_per_1k_resources,
        estimated_cost_per_1k_resources

    from source

)

select * from renamed
