{#- the table exists only once an HTTP extraction ran (loaders/warehouse/operational.py) -#}
{%- set request_log_columns = [
    ['run_id', 'varchar'],
    ['source_system', 'varchar'],
    ['request_id', 'varchar'],
    ['resource_type', 'varchar'],
    ['method', 'varchar'],
    ['path_template', 'varchar'],
    ['query_keys', 'varchar'],
    ['status', 'bigint'],
    ['latency_ms', 'double precision'],
    ['attempt', 'bigint'],
    ['outcome', 'varchar'],
    ['error_class', 'varchar'],
    ['retry_after_seconds', 'double precision'],
    ['response_bytes', 'bigint'],
    ['started_at', 'timestamp with time zone'],
] -%}

with

source as (

    {{ loader_optional_source(source('fhir', 'request_log'), request_log_columns) }}

),

final as (

    select

        ---------- ids
        run_id,
        source_system,
        request_id,
        attempt,

        ---------- attributes
        resource_type,
        method as http_method,
        path_template,
        query_keys,
        status as http_status,
        outcome,
        error_class,

        ---------- measures
        latency_ms,
        retry_after_seconds,
        response_bytes,

        ---------- timestamps (UTC)
        {{ to_utc_timestamp('started_at') }} as requested_at

    from source

)

select * from final
