{#
    null_rate_in_latest_load_below: a key staging column did not suddenly go null. Among the
    rows of the latest load (the greatest _dlt_load_id the model holds), the share of nulls
    stays below max_rate; a load with fewer than min_rows rows is not judged (a handful of
    updates proves nothing). One row per null record of that load, so a failure reports the
    number of nulls and its name the column (name the test `staging_null_guard_<model>_<column>`).
    A renamed or retyped source element makes the column null for every new row while the
    older rows keep it filled, which a rate over the whole table would dilute.
    arguments: max_rate (0..1), min_rows (default 20).
#}
{% test null_rate_in_latest_load_below(model, column_name, max_rate, min_rows=20) %}

{{ config(
    severity='error',
    error_if=fhir_elt.rate_above(max_rate),
    warn_if=fhir_elt.rate_above(max_rate)
) }}

with

latest_load as (

    select max(_dlt_load_id) as load_id
    from {{ model }}

),

latest_rows as (

    select tested.{{ column_name }} as tested_value
    from {{ model }} as tested
    inner join latest_load
        on tested._dlt_load_id = latest_load.load_id

),

checked as (

    select count(*) as checked_rows
    from latest_rows

),

final as (

    select
        latest_rows.tested_value,
        checked.checked_rows
    from latest_rows
    cross join checked
    where
        latest_rows.tested_value is null
        and checked.checked_rows >= {{ min_rows }}

)

select * from final

{% endtest %}
