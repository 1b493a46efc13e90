{#
    unique_combination_of_columns: no two rows share the same values of the listed columns.
    One row per duplicated combination (like dbt's unique). Rows with a null in any listed
    column are skipped (like unique, which ignores nulls).
    arguments: combination_of_columns (list of column names).
#}
{% test unique_combination_of_columns(model, combination_of_columns) %}

with

final as (

    select
        {% for column in combination_of_columns -%}
            {{ column }},
        {% endfor -%}
        count(*) as duplicate_count
    from {{ model }}
    where
        {% for column in combination_of_columns -%}
            {{ column }} is not null{% if not loop.last %} and {% endif %}
        {% endfor %}
    group by {% for column in combination_of_columns %}{{ column }}{% if not loop.last %}, {% endif %}{% endfor %}
    having count(*) > 1

)

select * from final

{% endtest %}
