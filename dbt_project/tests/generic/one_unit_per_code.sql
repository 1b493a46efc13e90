{#
    one_unit_per_code: after normalisation every code (e.g. a LOINC code) carries a single unit
    (the tested column), so values of one code can be compared and aggregated. One row per code
    with two or more distinct units, listing how many. Rows with a null unit or code pass.
    arguments: code_column.
    checked_rows (every row): distinct codes with a unit, for rate thresholds (macro rate_above).
#}
{% test one_unit_per_code(model, column_name, code_column) %}

with

units_by_code as (

    select
        {{ code_column }} as tested_code,
        count(distinct {{ column_name }}) as unit_count
    from {{ model }}
    where
        {{ column_name }} is not null
        and {{ code_column }} is not null
    group by {{ code_column }}

),

checked as (

    select count(*) as checked_rows
    from units_by_code

),

final as (

    select
        units_by_code.tested_code,
        units_by_code.unit_count,
        checked.checked_rows
    from units_by_code
    cross join checked
    where units_by_code.unit_count > 1

)

select * from final

{% endtest %}
