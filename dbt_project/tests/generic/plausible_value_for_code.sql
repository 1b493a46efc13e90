{#
    plausible_value_for_code: a measured value (the tested column) lies within the plausible
    range a seed gives for its code and unit (e.g. seed vital_sign_ranges: heart rate 20-300 /min).
    Outside it the value is almost certainly an entry or unit error. One row per offending
    record; records whose code/unit has no range, or whose value is null, pass.
    arguments: code_column, unit_column (in the model), ranges_from (a ref), ranges_code_column,
    ranges_unit_column, min_column, max_column (in ranges_from; bounds inclusive).
    checked_rows (every row): records with a value and a range, for rate thresholds.
#}
{% test plausible_value_for_code(
    model,
    column_name,
    code_column,
    unit_column,
    ranges_from,
    ranges_code_column='loinc_code',
    ranges_unit_column='unit_code',
    min_column='min_plausible_value',
    max_column='max_plausible_value'
) %}

with

records as (

    select
        {{ code_column }} as tested_code,
        {{ unit_column }} as tested_unit,
        {{ column_name }} as tested_value
    from {{ model }}
    where {{ column_name }} is not null

),

ranges as (

    select
        {{ ranges_code_column }} as range_code,
        {{ ranges_unit_column }} as range_unit,
        {{ min_column }} as min_value,
        {{ max_column }} as max_value
    from {{ ranges_from }}

),

ranged_records as (

    select
        records.*,
        ranges.min_value,
        ranges.max_value
    from records
    inner join ranges
        on
            records.tested_code = ranges.range_code
            and records.tested_unit = ranges.range_unit

),

checked as (

    select count(*) as checked_rows
    from ranged_records

),

final as (

    select
        ranged_records.*,
        checked.checked_rows
    from ranged_records
    cross join checked
    where
        ranged_records.tested_value < ranged_records.min_value
        or ranged_records.tested_value > ranged_records.max_value

)

select * from final

{% endtest %}
