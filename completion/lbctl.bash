# bash completion for lbctl (dsrlb): commands, options, and names from the cluster config.
# The commands are read from `lbctl --help`, so new ones complete without a change here; service
# names, backend addresses and VIPs come from the config (-c FILE, default /etc/dsrlb/dsrlb.conf) when
# it is readable. Installed by `make install` as PREFIX/share/bash-completion/completions/lbctl.
# COMPREPLY=($(compgen ...)) is the completion idiom; no word completed here holds a blank.
# shellcheck disable=SC2207

# The names of one kind of section of the config: _lbctl_sections FILE service|node
_lbctl_sections()
{
	[[ -r $1 ]] || return
	sed -n "s/^[[:space:]]*\[$2[[:space:]]\{1,\}\([A-Za-z0-9_.-]\{1,\}\)[[:space:]]*\].*/\1/p" "$1" 2>/dev/null
}

# The backend addresses of a service (or of every service when none is given): _lbctl_backends FILE [SERVICE]
_lbctl_backends()
{
	[[ -r $1 ]] || return
	awk -v want="$2" '
		/^[[:space:]]*\[/ { s = $0; gsub(/^[[:space:]]*\[|\][[:space:]]*([#;].*)?$/, "", s)
				    n = split(s, w, /[[:space:]]+/); insvc = (w[1] == "service" && (want == "" || w[2] == want)) }
		insvc && /^[[:space:]]*backend[[:space:]]*[=:]/ { v = $0; sub(/^[^=:]*[=:][[:space:]]*/, "", v)
							       split(v, a, /[[:space:]]+/); print a[1] }' "$1" 2>/dev/null
}

# IPv6 addresses hold colons, which bash splits words at: with bash-completion, the word is taken whole
# (_init_completion -n :) and the part before the last colon is taken off what is offered.
_lbctl_colon()
{
	declare -F __ltrim_colon_completions >/dev/null 2>&1 && __ltrim_colon_completions "$1"
}

_lbctl()
{
	local cur prev words cword
	if declare -F _init_completion >/dev/null 2>&1; then
		_init_completion -n : || return
	else
		COMPREPLY=()
		cur=${COMP_WORDS[COMP_CWORD]}
		prev=${COMP_WORDS[COMP_CWORD - 1]}
		words=("${COMP_WORDS[@]}")
		cword=$COMP_CWORD
	fi

	local opts="--run-dir -c --config --json --limit --help --version"
	local cb_opts="--vip --port --udp --interface -c --config --help"
	local cmds
	cmds=$("${words[0]}" --help 2>/dev/null | awk '/^commands:/ { on = 1; next } /^$/ { on = 0 }
		on && /^  [a-z]/ { print $1 }')
	[[ -n $cmds ]] || cmds="status stats backends flows drain undrain reload set-mode keygen check-backend"

	# The config file, the command and its arguments, skipping options and their values.
	local cfg=/etc/dsrlb/dsrlb.conf cmd="" i args=()
	for ((i = 1; i < cword; i++)); do
		case ${words[i]} in
		-c | --config) ((i + 1 < cword)) && cfg=${words[i + 1]}; ((i++)) ;;
		--config=*) cfg=${words[i]#--config=} ;;
		--run-dir | --limit | --vip | --port | --interface) ((i++)) ;;
		-*) ;;
		*) if [[ -z $cmd ]]; then cmd=${words[i]}; else args+=("${words[i]}"); fi ;;
		esac
	done
	cfg=${cfg/#\~/$HOME}

	case $prev in
	-c | --config)
		COMPREPLY=($(compgen -f -- "$cur"))
		compopt -o filenames 2>/dev/null
		return ;;
	--run-dir)
		COMPREPLY=($(compgen -d -- "$cur"))
		compopt -o filenames 2>/dev/null
		return ;;
	--limit | --port)
		return ;;
	--interface)
		COMPREPLY=($(compgen -W "$(ls /sys/class/net 2>/dev/null)" -- "$cur"))
		return ;;
	--vip)
		COMPREPLY=($(compgen -W "$([[ -r $cfg ]] && sed -n 's/^[[:space:]]*vip[[:space:]]*[=:][[:space:]]*\([0-9A-Fa-f.:]*\).*/\1/p' "$cfg" | sort -u)" -- "$cur"))
		_lbctl_colon "$cur"
		return ;;
	esac

	if [[ -z $cmd ]]; then
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$opts" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "$cmds" -- "$cur"))
		fi
		return
	fi

	case $cmd in
	status | stats | backends)
		COMPREPLY=($(compgen -W "--json" -- "$cur")) ;;
	flows)
		COMPREPLY=($(compgen -W "--json --limit" -- "$cur")) ;;
	drain | undrain)
		case ${#args[@]} in
		0) COMPREPLY=($(compgen -W "$(_lbctl_sections "$cfg" service)" -- "$cur")) ;;
		1) COMPREPLY=($(compgen -W "$(_lbctl_backends "$cfg" "${args[0]}")" -- "$cur")); _lbctl_colon "$cur" ;;
		esac ;;
	drain-node | undrain-node)
		;;      # no arguments: they act on this node
	set-mode)
		((${#args[@]} == 0)) && COMPREPLY=($(compgen -W "active standby" -- "$cur")) ;;
	keygen)
		case ${#args[@]} in
		0) COMPREPLY=($(compgen -f -- "$cur")); compopt -o filenames 2>/dev/null ;;
		1) COMPREPLY=($(compgen -g -- "$cur")) ;;
		esac ;;
	check-backend)
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "$cb_opts" -- "$cur"))
		elif ((${#args[@]} == 0)); then
			COMPREPLY=($(compgen -W "$(_lbctl_backends "$cfg" | sort -u)" -- "$cur"))
			_lbctl_colon "$cur"
		fi ;;
	esac
} &&
	complete -F _lbctl lbctl
