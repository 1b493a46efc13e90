{#
    null_rate_below: the share of rows where the column is null stays below a rate. One row per
    null record, so failures report the exact number of nulls; the thresholds are rates of
    checked_rows (all rows of the model, after any `where` config):
      error when nulls > max_rate x rows, warn when nulls > warn_rate x rows (default 0: any null).
    arguments: max_rate (0..1), warn_rate (0..1, default 0).
    An explicit warn_if / error_if in YAML overrides the thresholds set here.
#}
{% test null_rate_below(model, column_name, max_rate, warn_rate=0) %}

{{ config(
    severity='error',
    error_if=fhir_elt.rate_above(max_rate),
    warn_if=fhir_elt.rate_above(warn_rate)
) }}

with

checked as (

    select count(*) as checked_rows
    from {{ model }}

),

final as (

    select
        {{ column_name }} as tested_value,
        checked.checked_rows
    from {{ model }}
    cross join checked
    where {{ column_name }} is null

)

select * from final

{% endtest %}
