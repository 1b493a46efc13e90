{#
    One row per data rule (every dq_* test of the project) for this run: the rule's failing
    rows are counted by calling the rule's own generic test macro with its own arguments (read
    from the graph), so the count is the one the test reports; the denominator comes from
    macro dq_rule_checked_rows; the status applies the test's own warn_if / error_if.
    Every relation a rule reads must be a dependency of this model, listed below; a rule
    reading anything else is reported with status not_evaluated (add its relation here).
#}
-- depends_on: {{ ref('patients') }}
-- depends_on: {{ ref('encounters') }}
-- depends_on: {{ ref('conditions') }}
-- depends_on: {{ ref('observations') }}
-- depends_on: {{ ref('medication_requests') }}
-- depends_on: {{ ref('medication_dispenses') }}
-- depends_on: {{ ref('procedures') }}
-- depends_on: {{ ref('immunizations') }}
-- depends_on: {{ ref('allergies') }}
-- depends_on: {{ ref('practitioners') }}
-- depends_on: {{ ref('organizations') }}
-- depends_on: {{ ref('locations') }}
-- depends_on: {{ ref('patient_identities') }}
-- depends_on: {{ ref('stg_fhir__observations') }}
-- depends_on: {{ ref('stg_fhir__observation_components') }}
-- depends_on: {{ ref('administrative_gender') }}
-- depends_on: {{ ref('encounter_class') }}
-- depends_on: {{ ref('fhir_value_sets') }}
-- depends_on: {{ ref('loinc_units') }}
-- depends_on: {{ ref('vital_sign_ranges') }}
{%- set rule_selects = [] -%}
{#-
    sqlfluff renders models on target `lint`: there the rules are left out, so it lints this
    model's own SQL, not thousands of generated lines (the generic tests are not linted either).
-#}
{%- if execute and target.name != 'lint' -%}
    {#- test arguments written as a ref or var call, with or without curly braces -#}
    {%- set name_in_call = "\\(\\s*['\"]([^'\"]+)['\"]\\s*\\)" -%}
    {%- set ref_pattern = modules.re.compile(
        "^\\s*(?:\\{\\{\\s*)?ref" ~ name_in_call ~ "(?:\\s*\\}\\})?\\s*$"
    ) -%}
    {%- set var_pattern = modules.re.compile("^\\s*\\{\\{\\s*var" ~ name_in_call ~ "\\s*\\}\\}\\s*$") -%}
    {#- error_if of a rate rule: "> RATE * coalesce(max(checked_rows), 0)" (macro rate_above) -#}
    {%- set rate_pattern = modules.re.compile(
        "^\\s*>\\s*([0-9.eE+-]+)\\s*\\*\\s*coalesce\\(\\s*max\\(\\s*checked_rows\\s*\\)"
    ) -%}
    {%- set rules = [] -%}
    {%- for node in graph.nodes.values() -%}
        {%- if node.resource_type == 'test' and node.name.startswith('dq_') and node.test_metadata -%}
            {%- do rules.append(node) -%}
        {%- endif -%}
    {%- endfor -%}
    {%- for node in rules | sort(attribute='name') -%}
        {%- set test_name = node.test_metadata.name -%}
        {%- set attached = graph.nodes.get(node.attached_node) -%}
        {%- set model_name = attached.name if attached else node.attached_node -%}
        {%- set column_name = node.column_name or '' -%}
        {%- set test_macro = context.get('test_' ~ test_name) -%}
        {%- set missing = [] -%}
        {%- for dependency in node.depends_on.nodes if dependency not in model.depends_on.nodes -%}
            {%- do missing.append(dependency) -%}
        {%- endfor -%}
        {#- render the test's arguments: refs, vars and literals -#}
        {%- set args = {} -%}
        {%- for key, value in node.test_metadata.kwargs.items() if key != 'model' -%}
            {%- if value is string and ref_pattern.match(value) -%}
                {%- do args.update({key: ref(ref_pattern.match(value).group(1))}) -%}
            {%- elif value is string and var_pattern.match(value) -%}
                {%- do args.update({key: var(var_pattern.match(value).group(1))}) -%}
            {%- elif value is string and '{{' in value -%}
                {%- do missing.append(key ~ ' (unrenderable argument)') -%}
            {%- else -%}
                {%- do args.update({key: value}) -%}
            {%- endif -%}
        {%- endfor -%}
        {%- set error_if = node.config.error_if | replace('max(checked_rows)', 'checked_rows') -%}
        {%- set warn_if = node.config.warn_if | replace('max(checked_rows)', 'checked_rows') -%}
        {%- set error_status = 'warn' if (node.config.severity | lower) == 'warn' else 'error' -%}
        {%- set rate_match = rate_pattern.match(node.config.error_if) -%}
        {%- set error_rate = rate_match.group(1) if rate_match else 'null' -%}
        {%- if missing or test_macro is none or not attached -%}
            {%- set reason = missing | join(', ') if missing else 'no generic test macro ' ~ test_name -%}
            {%- do exceptions.warn('data_quality_rule_results: ' ~ node.name ~ ' not evaluated: ' ~ reason) -%}
            {%- set rule_sql -%}
                select
                    '{{ node.name }}' as rule_name,
                    '{{ test_name }}' as rule_type,
                    '{{ model_name }}' as model_name,
                    '{{ column_name }}' as column_name,
                    cast(null as bigint) as failing_row_count,
                    cast(null as bigint) as checked_row_count,
                    cast({{ error_rate }} as double precision) as error_rate_threshold,
                    'not_evaluated' as rule_status
            {%- endset -%}
        {%- else -%}
            {%- set relation = ref(model_name) -%}
            {%- if node.config.where -%}
                {%- set where = node.config.where -%}
                {%- set relation = '(select * from ' ~ relation ~ ' where ' ~ where ~ ') as dbt_subquery' -%}
            {%- endif -%}
            {%- set test_args = {'model': relation} -%}
            {%- do test_args.update(args) -%}
            {%- if column_name -%}
                {%- do test_args.update({'column_name': column_name}) -%}
            {%- endif -%}
            {%- set rule_sql -%}
                select
                    '{{ node.name }}' as rule_name,
                    '{{ test_name }}' as rule_type,
                    '{{ model_name }}' as model_name,
                    '{{ column_name }}' as column_name,
                    failures.failing_row_count,
                    checked.checked_rows as checked_row_count,
                    cast({{ error_rate }} as double precision) as error_rate_threshold,
                    case
                        when failures.failing_row_count {{ error_if }} then '{{ error_status }}'
                        when failures.failing_row_count {{ warn_if }} then 'warn'
                        else 'pass'
                    end as rule_status
                from (
                    select count(*) as failing_row_count
                    from (
                        {{ test_macro(**test_args) }}
                    ) as failing_records
                ) as failures
                cross join (
                    {{ dq_rule_checked_rows(test_name, relation, column_name, args) }}
                ) as checked
            {%- endset -%}
        {%- endif -%}
        {%- do rule_selects.append(rule_sql) -%}
    {%- endfor -%}
{%- endif -%}
{%- if rule_selects | length == 0 -%}
    {%- do rule_selects.append(
        "select cast(null as varchar) as rule_name, cast(null as varchar) as rule_type,"
        ~ " cast(null as varchar) as model_name, cast(null as varchar) as column_name,"
        ~ " cast(null as bigint) as failing_row_count, cast(null as bigint) as checked_row_count,"
        ~ " cast(null as double precision) as error_rate_threshold, cast(null as varchar) as rule_status"
        ~ " where 1 = 0"
    ) -%}
{%- endif %}

with

rule_results as (

    {{ rule_selects | join('\n    union all\n') }}

),

final as (

    select
        ---------- run
        cast('{{ invocation_id }}' as varchar) as invocation_id,
        cast('{{ run_started_at.strftime("%Y-%m-%d %H:%M:%S") }}' as timestamp) as run_started_at,

        ---------- rule
        cast(rule_name as varchar) as rule_name,
        cast(rule_type as varchar) as rule_type,
        cast(model_name as varchar) as model_name,
        cast(nullif(column_name, '') as varchar) as column_name,

        ---------- measures
        cast(failing_row_count as bigint) as failing_row_count,
        cast(checked_row_count as bigint) as checked_row_count,
        cast(
            case when checked_row_count > 0 then failing_row_count * 1.0 / checked_row_count end as double
        ) as failure_rate,
        cast(error_rate_threshold as double) as error_rate_threshold,
        cast(rule_status as varchar) as rule_status
    from rule_results

)

select * from final
