{#
    unit_valid_for_code: for records whose code has rows in a units seed, the unit (the tested
    column) is one of that code's allowed units. One row per offending record. Records with a
    null unit or a code absent from the seed pass.
    arguments: code_column (in the model), units_from (a ref), units_code_column, units_unit_column.
    checked_rows (every row): records with a unit and a seeded code, for rate thresholds.
#}
{% test unit_valid_for_code(
    model,
    column_name,
    code_column,
    units_from,
    units_code_column='loinc_code',
    units_unit_column='unit_code'
) %}

with

records as (

    select
        {{ code_column }} as tested_code,
        {{ column_name }} as tested_unit
    from {{ model }}
    where {{ column_name }} is not null

),

allowed_units as (

    select distinct
        {{ units_code_column }} as allowed_code,
        {{ units_unit_column }} as allowed_unit
    from {{ units_from }}

),

checked_codes as (

    select distinct allowed_code
    from allowed_units

),

checked_records as (

    select records.*
    from records
    inner join checked_codes
        on records.tested_code = checked_codes.allowed_code

),

checked as (

    select count(*) as checked_rows
    from checked_records

),

final as (

    select
        checked_records.tested_code,
        checked_records.tested_unit,
        checked.checked_rows
    from checked_records
    cross join checked
    left join allowed_units
        on
            checked_records.tested_code = allowed_units.allowed_code
            and checked_records.tested_unit = allowed_units.allowed_unit
    where allowed_units.allowed_unit is null

)

select * from final

{% endtest %}
