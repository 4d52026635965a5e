# bash completion for bosk(1): subcommands, their flags, and the values
# that have a fixed set (storage kinds, log formats, states) or are files.
# Installed as $(DATAROOTDIR)/bash-completion/completions/bosk; source it
# by hand with `. completion/bosk.bash` from a source tree.

_bosk_common_flags="--boskos-url --server-url --owner --owner-name --username --password-file --help"

# _bosk_flags CMD: the flags CMD accepts (as `bosk CMD --help` lists them).
_bosk_flags()
{
    case $1 in
        run)       echo "-e" ;;
        repl)      echo "$_bosk_common_flags" ;;
        server)    echo "--config --storage --listen --port --metrics-port --request-ttl
                         --sync-period --log-level --namespace --in_memory --kubeconfig
                         --dynamic-resource-update-period --help" ;;
        janitor)   echo "$_bosk_common_flags --once --plan --pool-size --update-frequency --state-file
                         --metrics-listen --control --grace --poll-interval --log-format --log-level
                         --progress-every --resource-type --resource-type-from-config
                         --janitor-path" ;;
        control)   echo "--socket --json --timeout --help" ;;
        reaper)    echo "$_bosk_common_flags --resource-type --resource-type-from-config --expire
                         --target-state --extra-source-states --every --once --log-level
                         --log-format" ;;
        acquire)   echo "$_bosk_common_flags --type --state --target-state --timeout" ;;
        release)   echo "$_bosk_common_flags --name --target-state" ;;
        heartbeat) echo "$_bosk_common_flags --resource --period --timeout --retries" ;;
        metric|metrics) echo "$_bosk_common_flags --type" ;;
        reset)     echo "$_bosk_common_flags --type --state --expire --target-state" ;;
        status)    echo "$_bosk_common_flags --type --json" ;;
        list)      echo "$_bosk_common_flags --type --state --owner --json --timeout" ;;
        history)   echo "$_bosk_common_flags --name --limit --json --timeout" ;;
        hold)      echo "$_bosk_common_flags --name --for --reason --state --timeout" ;;
    esac
}

_bosk()
{
    local cur prev words cword
    if declare -F _init_completion >/dev/null; then
        _init_completion -n = || return
    else
        cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
        words=("${COMP_WORDS[@]}") cword=$COMP_CWORD
    fi

    local commands="run repl server janitor control reaper acquire release heartbeat metric metrics reset status list history hold version help"
    # The subcommand: the first word that is not a flag or a flag's value
    # (global flags may come before it, as boskosctl allows).
    local cmd="" i
    for ((i = 1; i < cword; i++)); do
        case ${words[i]} in
            --*=*) ;;
            -*) [[ ${words[i]} == --once || ${words[i]} == --json ]] || ((i++)) ;;
            *) cmd=${words[i]}; break ;;
        esac
    done

    if [[ -z $cmd ]]; then
        if [[ $cur == -* ]]; then
            COMPREPLY=($(compgen -W "--version --help $_bosk_common_flags" -- "$cur"))
        else
            COMPREPLY=($(compgen -W "$commands" -- "$cur"))
        fi
        return
    fi

    case $prev in
        --storage)
            COMPREPLY=($(compgen -W "memory sqlite:" -- "$cur")); compopt -o nospace 2>/dev/null
            return ;;
        --log-format)
            COMPREPLY=($(compgen -W "text json" -- "$cur")); return ;;
        --state|--target-state)
            COMPREPLY=($(compgen -W "free busy dirty cleaning leased toBeDeleted tombstone" -- "$cur"))
            return ;;
        --config|--password-file|--state-file|--control|--socket)
            COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -e|--boskos-url|--server-url|--owner|--owner-name|--username|--type|--name|\
        --listen|--port|--metrics-port|--metrics-listen|--request-ttl|--sync-period|\
        --timeout|--period|--retries|--expire|--pool-size|--update-frequency|--grace|\
        --poll-interval|--resource|--limit|--for|--reason)
            return ;;
    esac

    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$(_bosk_flags "$cmd")" -- "$cur"))
    elif [[ $cmd == control ]]; then
        COMPREPLY=($(compgen -W "list kill pause resume breakers drain" -- "$cur"))
    elif [[ $cmd == janitor || $cmd == run ]]; then
        # Policy files and scripts.
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}
complete -F _bosk bosk
