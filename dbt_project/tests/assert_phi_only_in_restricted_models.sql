{#
    PHI fence (GitLab's "safe model" check): fails with one row per column marked
    meta.contains_phi (on the column or on the model) in a model or snapshot that is neither
    restricted (tag `restricted`) nor staging (an internal layer, like the raw schema).
#}
{%- set offender_rows = [] -%}
{%- if execute -%}
    {%- for node in graph.nodes.values() if node.resource_type in ('model', 'snapshot') -%}
        {%- set is_fenced = 'restricted' in node.tags or node.fqn[1] in ('staging', 'restricted') -%}
        {%- if not is_fenced -%}
            {%- if node.config.meta.get('contains_phi') or node.meta.get('contains_phi') -%}
                {%- do offender_rows.append("select '" ~ node.name ~ "' as model_name, '*' as column_name") -%}
            {%- endif -%}
            {%- for column in node.columns.values() -%}
                {%- if column.meta.get('contains_phi') or column.config.get('meta', {}).get('contains_phi') -%}
                    {%- do offender_rows.append(
                        "select '" ~ node.name ~ "' as model_name, '" ~ column.name ~ "' as column_name"
                    ) -%}
                {%- endif -%}
            {%- endfor -%}
        {%- endif -%}
    {%- endfor -%}
{%- endif -%}
{%- if offender_rows | length == 0 -%}
    {%- do offender_rows.append(
        "select cast(null as varchar) as model_name, cast(null as varchar) as column_name where 1 = 0"
    ) -%}
{%- endif %}

with

final as (

    {{ offender_rows | join('\nunion all\n') }}

)

select * from final
