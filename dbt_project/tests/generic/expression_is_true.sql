{#
    expression_is_true: a boolean SQL expression over the model's columns holds on every row
    (e.g. "numerator_count <= denominator_count"). One row per row where it is false; rows where
    it evaluates to null pass (state nulls explicitly when they matter).
    arguments: expression.
#}
{% test expression_is_true(model, expression) %}

with

final as (

    select *
    from {{ model }}
    where not ({{ expression }})

)

select * from final

{% endtest %}
