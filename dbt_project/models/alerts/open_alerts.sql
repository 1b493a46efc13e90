-- Every alert open now, one row per alert kind, source and resource type. `fhir-elt alerts`
-- reads this model after a run, exits non-zero when it has rows and can post them to a webhook.

with

no_new_rows as (

    select * from {{ ref('alert_no_new_rows') }}

),

rate_jumps as (

    select * from {{ ref('alert_rate_jumps') }}

),

freshness_gaps as (

    select * from {{ ref('alert_freshness_gaps') }}

),

reconciliation_deltas as (

    select * from {{ ref('alert_reconciliation_deltas') }}

),

unioned as (

    select * from no_new_rows
    union all
    select * from rate_jumps
    union all
    select * from freshness_gaps
    union all
    select * from reconciliation_deltas

),

final as (

    select
        -- ids
        alert_kind || ':' || source_system || ':' || resource_type as alert_id,
        alert_kind,
        source_system,
        resource_type,
        run_id,

        -- measures
        observed_value,
        threshold,
        message,

        -- dates
        {{ fhir_elt.as_of_timestamp() }} as evaluated_at

    from unioned

)

select * from final
