{#
    reference_resolves: a reference (the tested column, e.g. a keyed patient_key or a
    source_system|id key) points at a row that exists in `to`.`field`. One row per record with a
    dangling reference (like dbt's relationships); null references pass (use not_null or
    null_rate_below for those).
    arguments: to (a ref), field (the key column there).
    checked_rows (every row): records with a non-null reference, for rate thresholds.
#}
{% test reference_resolves(model, column_name, to, field) %}

with

records as (

    select {{ column_name }} as reference_key
    from {{ model }}
    where {{ column_name }} is not null

),

targets as (

    select distinct {{ field }} as target_key
    from {{ to }}
    where {{ field }} is not null

),

checked as (

    select count(*) as checked_rows
    from records

),

final as (

    select
        records.reference_key,
        checked.checked_rows
    from records
    cross join checked
    left join targets
        on records.reference_key = targets.target_key
    where targets.target_key is null

)

select * from final

{% endtest %}
