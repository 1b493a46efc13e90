{#
    not_before: the column (e.g. ended_at) is not earlier than another column of the same row
    (e.g. started_at): a period does not end before it starts. One row per offending record;
    rows with either value null pass.
    arguments: start_column.
    checked_rows (every row): records with both values, for rate thresholds (macro rate_above).
#}
{% test not_before(model, column_name, start_column) %}

with

records as (

    select
        {{ start_column }} as start_value,
        {{ column_name }} as tested_value
    from {{ model }}
    where
        {{ column_name }} is not null
        and {{ start_column }} is not null

),

checked as (

    select count(*) as checked_rows
    from records

),

final as (

    select
        records.start_value,
        records.tested_value,
        checked.checked_rows
    from records
    cross join checked
    where records.tested_value < records.start_value

)

select * from final

{% endtest %}
