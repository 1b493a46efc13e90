-- A resource type whose last successful sync is older than its SLA (var alert_freshness_sla_hours,
-- per resource type with a default). A type that never succeeded counts from its first attempt.

{%- set sla_hours = var('alert_freshness_sla_hours', {}) %}
{%- set default_sla = sla_hours.get('default', 26) %}

with

metrics as (

    select * from {{ ref('stg_fhir__run_metrics') }}

),

type_sync_times as (

    select
        source_system,
        resource_type,
        max(case when type_status = 'succeeded' then run_finished_at end) as last_success_at,
        min(run_started_at) as first_attempt_at
    from metrics
    where resource_type != '(untyped)'
    group by 1, 2

),

gaps as (

    select
        source_system,
        resource_type,
        last_success_at,
        {{ dbt.datediff(
            'coalesce(last_success_at, first_attempt_at)',
            fhir_elt.as_of_timestamp(),
            'minute'
        ) }} / 60.0 as hours_since_success,
        {%- set per_type = sla_hours.items() | rejectattr(0, 'equalto', 'default') | list %}
        {%- if per_type %}
            case resource_type
                {%- for resource_type, hours in per_type %}
                    when '{{ resource_type }}' then {{ hours }}
                {%- endfor %}
                else {{ default_sla }}
            end
        {%- else %}
            {{ default_sla }}
        {%- endif %} as sla_hours
    from type_sync_times

),

final as (

    select
        'freshness_gap' as alert_kind,
        source_system,
        resource_type,
        cast(null as varchar) as run_id,
        cast(hours_since_success as double) as observed_value,
        cast(sla_hours as double) as threshold,
        resource_type || ' from ' || source_system || ' last synced successfully '
        || case
            when last_success_at is null then 'never (first attempt '
            else ''
        end
        || cast(round(hours_since_success, 1) as varchar) || ' h ago'
        || case when last_success_at is null then ')' else '' end
        || ', beyond its SLA of ' || cast(sla_hours as varchar) || ' h' as message
    from gaps
    where hours_since_success > sla_hours

)

select * from final
