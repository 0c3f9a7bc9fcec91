{ _hvbsd_sh_flags=$-; set +xv; } 2>/dev/null # no -x or -v output from this file
#
# The simulated guest's /bin/sh is bash made to behave as FreeBSD's sh
# (bin/sh) on what FreeBSD's rc files and hvbsd's scripts use.  /bin/sh is a
# wrapper written at guest creation (hvbsd.sim.freebsd.sh_wrapper): it starts
# bash under another name, so bash is not in POSIX mode yet and reads this
# file through BASH_ENV (an interactive one through --rcfile) before the
# script.  This file is bash by necessity: it uses bash's own switches to
# turn bash into FreeBSD's sh.  What still differs is listed in README.md
# ("The guest's /bin/sh").

# A child sh goes through the wrapper again; nothing else inherits this.
unset BASH_ENV

# bin/sh/options.c procargs: $0 is the shell's argv[0] ("sh") for -c
# without a name and for commands read from standard input.
if [ "$0" = sh-freebsd ]; then
	BASH_ARGV0='sh'
fi

# FreeBSD's sh has no BASH_VERSION: a script that tests it takes its sh path.
unset BASH_VERSION
set -o posix
# bin/sh/sh.1 "Word Expansions": no brace expansion, "{a,b}" stays as it is.
set +B
# bin/sh/options.c shiftcmd: shifting more than $# returns 1, silently, and
# the script goes on.
shopt -u shift_verbose
# bin/sh/var.c mklocal and unsetvar: a function that unsets its caller's
# local variable leaves it unset until the caller returns (bash would show
# the global value instead).
shopt -s localvar_unset
# bin/sh/var.c mklocal: "local x" without a value keeps the caller's value
# and flags (sh.1 "local"); bash would start it unset. network.subr's
# childif_destroy declares ifn local and reads the ifn of ifn_stop.
shopt -s localvar_inherit

# bin/sh/error.c vwarning: a builtin's error is "NAME: message" on stderr.
_hvbsd_sh_error()
{
	printf '%s\n' "$*" >&2
}

# bin/sh/var.c setvar: a name is a letter or "_", then letters, digits and
# "_"; only the part before a "=" counts.  True when "$1" is such a name.
_hvbsd_sh_goodname()
{
	case ${1%%=*} in
	'' | [!A-Za-z_]* | *[!A-Za-z0-9_]*) return 1 ;;
	esac
	return 0
}

# bin/sh/var.c setvarcmd and setvar: "setvar name value" assigns, "setvar
# [name]" unsets (unset's own options apply), more arguments are an error;
# errors return 2 and the script goes on (setvar is a regular builtin).
setvar()
{
	{ local -; set +eux; } 2>/dev/null # a builtin: no trace, the caller's -e and -u left out
	if [ "$#" -le 1 ]; then
		# var.c unsetvar: a read-only variable stays, silently, status 1.
		if [ "$#" -eq 1 ] && _hvbsd_sh_goodname "$1" && [ "$1" = "${1%%=*}" ]; then
			case ${!1@a} in
			*r*) return 1 ;;
			esac
		fi
		unset "$@"
		return
	fi
	if [ "$#" -gt 2 ]; then
		_hvbsd_sh_error "setvar: too many arguments"
		return 2
	fi
	if ! _hvbsd_sh_goodname "$1"; then
		_hvbsd_sh_error "setvar: ${1%%=*}: bad variable name"
		return 2
	fi
	set -- "${1%%=*}" "$2"
	case ${!1@a} in
	*r*)
		_hvbsd_sh_error "setvar: $1: is read only"
		return 2
		;;
	esac
	printf -v "$1" '%s' "$2"
}

# bin/sh/bltin/echo.c echocmd: only the first argument may be an option,
# and only "-n" (no newline) or "-e" (backslash escapes: \a \b \c \e \f \n
# \r \t \v \\ and \0 with up to three octal digits; \c ends the output, and
# any other backslash is printed as it is).  Without -e nothing is escaped.
echo()
{
	{ local -; set +eux; } 2>/dev/null # a builtin: no trace, the caller's -e and -u left out
	local _hvbsd_echo_newline='\n' _hvbsd_echo_escapes=
	case ${1-} in
	-n)
		_hvbsd_echo_newline=
		shift
		;;
	-e)
		_hvbsd_echo_escapes=1
		shift
		;;
	esac
	local IFS=' '
	if [ -z "$_hvbsd_echo_escapes" ]; then
		printf "%s$_hvbsd_echo_newline" "$*"
		return 0
	fi
	local _hvbsd_echo_format='' _hvbsd_echo_rest _hvbsd_echo_digits _hvbsd_echo_byte
	_hvbsd_echo_rest=$*
	while :; do
		case $_hvbsd_echo_rest in
		*\\*) ;;
		*)
			_hvbsd_echo_format+=${_hvbsd_echo_rest//%/%%}
			break
			;;
		esac
		_hvbsd_echo_digits=${_hvbsd_echo_rest%%\\*}
		_hvbsd_echo_format+=${_hvbsd_echo_digits//%/%%}
		_hvbsd_echo_rest=${_hvbsd_echo_rest#*\\}
		case $_hvbsd_echo_rest in
		[abefnrtv\\]*)
			case $_hvbsd_echo_rest in
			a*) _hvbsd_echo_byte=7 ;;
			b*) _hvbsd_echo_byte=8 ;;
			e*) _hvbsd_echo_byte=27 ;;
			f*) _hvbsd_echo_byte=12 ;;
			n*) _hvbsd_echo_byte=10 ;;
			r*) _hvbsd_echo_byte=13 ;;
			t*) _hvbsd_echo_byte=9 ;;
			v*) _hvbsd_echo_byte=11 ;;
			*) _hvbsd_echo_byte=92 ;;
			esac
			_hvbsd_echo_rest=${_hvbsd_echo_rest#?}
			;;
		c*)
			# shellcheck disable=SC2059 # the format is built above
			printf "$_hvbsd_echo_format"
			return 0
			;;
		0*)
			_hvbsd_echo_digits=${_hvbsd_echo_rest:1:3}
			_hvbsd_echo_digits=${_hvbsd_echo_digits%%[!0-7]*}
			_hvbsd_echo_rest=${_hvbsd_echo_rest:$((1 + ${#_hvbsd_echo_digits}))}
			# echo.c keeps the value in a char: only its low 8 bits.
			_hvbsd_echo_byte=$(((8#0${_hvbsd_echo_digits}) & 255))
			;;
		*)
			_hvbsd_echo_byte=92 # the backslash itself; what follows is plain
			;;
		esac
		printf -v _hvbsd_echo_digits '\\%03o' "$_hvbsd_echo_byte"
		_hvbsd_echo_format+=$_hvbsd_echo_digits
	done
	# shellcheck disable=SC2059 # the format is built above
	printf "$_hvbsd_echo_format$_hvbsd_echo_newline"
}

# bin/sh/options.c getoptscmd and getopts.  FreeBSD keeps getopts' place
# per function call: a call starts over (eval.c evalfun sets
# shellparam.reset), so do "set --", "shift" and assigning 1 to OPTIND;
# otherwise OPTIND is only written.  Messages are "Illegal option -x" and
# "No arg for -x option" on stderr (none when optstring starts with ":");
# OPTARG is unset unless an option's argument (or, silent, the letter) is
# there.  A shell function cannot see its caller's positional parameters,
# so the alias below hands them over: getopts OPTSTRING VAR [ARG...] runs
# as _hvbsd_sh_getopts "$#" "$@" -- OPTSTRING VAR [ARG...].
#
# The place is kept per call depth, in these arrays, with what identifies
# the call (function names, calling lines) and the caller's parameters: a
# change in either starts over.  What bash cannot show (a function called
# again from the same line with the same arguments, "set --" with the same
# arguments) is taken as a reset once the last call has reached the end.
_hvbsd_getopts_frame=()
_hvbsd_getopts_params=()
_hvbsd_getopts_list=()
_hvbsd_getopts_next=()
_hvbsd_getopts_char=()
_hvbsd_getopts_optind=1

_hvbsd_sh_getopts()
{
	{ local -; set +eux; } 2>/dev/null # a builtin: no trace, the caller's -e and -u left out
	local _hvbsd_go_count=$1
	shift
	local -a _hvbsd_go_params=("${@:1:_hvbsd_go_count}") _hvbsd_go_words
	shift "$((_hvbsd_go_count + 1))"
	if [ "$#" -lt 2 ]; then
		_hvbsd_sh_error "getopts: usage: getopts optstring var [arg]"
		return 2
	fi
	local _hvbsd_go_depth=${#FUNCNAME[@]} _hvbsd_go_frame _hvbsd_go_snapshot
	local _hvbsd_go_i _hvbsd_go_reset='' _hvbsd_go_optind=${OPTIND-}
	_hvbsd_go_frame="${FUNCNAME[*]:1}|${BASH_LINENO[*]:1}|${BASH_SOURCE[*]:1}"
	printf -v _hvbsd_go_snapshot '%q ' "${_hvbsd_go_params[@]}"
	# Calls deeper than this one have returned.
	for _hvbsd_go_i in "${!_hvbsd_getopts_frame[@]}"; do
		if [ "$_hvbsd_go_i" -gt "$_hvbsd_go_depth" ]; then
			unset "_hvbsd_getopts_frame[$_hvbsd_go_i]"
		fi
	done
	if [ "${_hvbsd_getopts_frame[_hvbsd_go_depth]-}" != "$_hvbsd_go_frame" ] ||
	    [ "${_hvbsd_getopts_params[_hvbsd_go_depth]-}" != "$_hvbsd_go_snapshot" ]; then
		_hvbsd_go_reset=1
	elif [ "${_hvbsd_getopts_next[_hvbsd_go_depth]}" -lt 0 ]; then
		# Done: FreeBSD answers 1 again until a reset, but a function
		# called anew from the same line with the same arguments, or
		# "set --" with the same arguments, would start over there, and
		# the two cannot be told apart here; starting over is the
		# common case.
		_hvbsd_go_reset=1
	elif [ "$_hvbsd_go_optind" != "$_hvbsd_getopts_optind" ]; then
		# var.c getoptsreset: assigning 1 starts over (so does "local
		# OPTIND", which leaves it unset here).
		while [ "${_hvbsd_go_optind#0}" != "$_hvbsd_go_optind" ]; do
			_hvbsd_go_optind=${_hvbsd_go_optind#0}
		done
		case $_hvbsd_go_optind in
		'' | 1) _hvbsd_go_reset=1 ;;
		esac
	fi
	if [ -n "$_hvbsd_go_reset" ]; then
		_hvbsd_getopts_frame[_hvbsd_go_depth]=$_hvbsd_go_frame
		_hvbsd_getopts_params[_hvbsd_go_depth]=$_hvbsd_go_snapshot
		_hvbsd_getopts_list[_hvbsd_go_depth]=
		if [ "$#" -gt 2 ]; then
			printf -v "_hvbsd_getopts_list[_hvbsd_go_depth]" '%q ' "${@:3}"
		fi
		_hvbsd_getopts_next[_hvbsd_go_depth]=0
		_hvbsd_getopts_char[_hvbsd_go_depth]=-1
	fi
	if [ -n "${_hvbsd_getopts_list[_hvbsd_go_depth]}" ]; then
		eval "_hvbsd_go_words=(${_hvbsd_getopts_list[_hvbsd_go_depth]})"
	else
		_hvbsd_go_words=("${_hvbsd_go_params[@]}")
	fi
	local _hvbsd_go_optstring=$1 _hvbsd_go_var=$2
	local _hvbsd_go_next=${_hvbsd_getopts_next[_hvbsd_go_depth]}
	local _hvbsd_go_char=${_hvbsd_getopts_char[_hvbsd_go_depth]}
	local _hvbsd_go_word='' _hvbsd_go_letter='?' _hvbsd_go_done=0 _hvbsd_go_index=0
	local _hvbsd_go_arg='' _hvbsd_go_hasarg=''

	if [ "$_hvbsd_go_char" -ge 0 ]; then
		_hvbsd_go_word=${_hvbsd_go_words[_hvbsd_go_next - 1]}
	fi
	if [ "$_hvbsd_go_char" -lt 0 ] || [ "$_hvbsd_go_char" -ge "${#_hvbsd_go_word}" ]; then
		# The current word is done: the next one.
		if [ "$_hvbsd_go_next" -ge "${#_hvbsd_go_words[@]}" ]; then
			_hvbsd_go_done=1
		else
			_hvbsd_go_word=${_hvbsd_go_words[_hvbsd_go_next]}
			case $_hvbsd_go_word in
			-)
				_hvbsd_go_done=1
				;;
			--)
				_hvbsd_go_next=$((_hvbsd_go_next + 1))
				_hvbsd_go_done=1
				;;
			-*)
				_hvbsd_go_next=$((_hvbsd_go_next + 1))
				_hvbsd_go_char=1
				;;
			*)
				_hvbsd_go_done=1
				;;
			esac
		fi
	fi
	if [ "$_hvbsd_go_done" = 1 ]; then
		_hvbsd_go_index=$((_hvbsd_go_next + 1))
		_hvbsd_go_next=-1
		_hvbsd_go_char=-1
	else
		_hvbsd_go_letter=${_hvbsd_go_word:_hvbsd_go_char:1}
		_hvbsd_go_char=$((_hvbsd_go_char + 1))
		# Find the letter the way getopts() walks optstring: each letter,
		# then the ':' after it if there is one.
		_hvbsd_go_i=0
		while [ "$_hvbsd_go_i" -lt "${#_hvbsd_go_optstring}" ] &&
		    [ "${_hvbsd_go_optstring:_hvbsd_go_i:1}" != "$_hvbsd_go_letter" ]; do
			_hvbsd_go_i=$((_hvbsd_go_i + 1))
			if [ "${_hvbsd_go_optstring:_hvbsd_go_i:1}" = : ]; then
				_hvbsd_go_i=$((_hvbsd_go_i + 1))
			fi
		done
		if [ "$_hvbsd_go_i" -ge "${#_hvbsd_go_optstring}" ]; then
			if [ "${_hvbsd_go_optstring:0:1}" = : ]; then
				_hvbsd_go_arg=$_hvbsd_go_letter
				_hvbsd_go_hasarg=1
			else
				_hvbsd_sh_error "Illegal option -$_hvbsd_go_letter"
			fi
			_hvbsd_go_letter='?'
		elif [ "${_hvbsd_go_optstring:_hvbsd_go_i + 1:1}" = : ]; then
			if [ "$_hvbsd_go_char" -lt "${#_hvbsd_go_word}" ]; then
				_hvbsd_go_arg=${_hvbsd_go_word:_hvbsd_go_char}
				_hvbsd_go_hasarg=1
			elif [ "$_hvbsd_go_next" -lt "${#_hvbsd_go_words[@]}" ]; then
				_hvbsd_go_arg=${_hvbsd_go_words[_hvbsd_go_next]}
				_hvbsd_go_hasarg=1
				_hvbsd_go_next=$((_hvbsd_go_next + 1))
			elif [ "${_hvbsd_go_optstring:0:1}" = : ]; then
				_hvbsd_go_arg=$_hvbsd_go_letter
				_hvbsd_go_hasarg=1
				_hvbsd_go_letter=:
			else
				_hvbsd_sh_error "No arg for -$_hvbsd_go_letter option"
				_hvbsd_go_letter='?'
			fi
			_hvbsd_go_char=-1
		fi
		_hvbsd_go_index=$((_hvbsd_go_next + 1))
	fi
	_hvbsd_getopts_next[_hvbsd_go_depth]=$_hvbsd_go_next
	_hvbsd_getopts_char[_hvbsd_go_depth]=$_hvbsd_go_char
	if [ -n "$_hvbsd_go_hasarg" ]; then
		OPTARG=$_hvbsd_go_arg
	else
		unset OPTARG
	fi
	OPTIND=$_hvbsd_go_index
	_hvbsd_getopts_optind=$_hvbsd_go_index
	if ! _hvbsd_sh_goodname "$_hvbsd_go_var"; then
		_hvbsd_sh_error "getopts: ${_hvbsd_go_var%%=*}: bad variable name"
		_hvbsd_getopts_next[_hvbsd_go_depth]=-1
		return 2
	fi
	_hvbsd_go_var=${_hvbsd_go_var%%=*}
	case ${!_hvbsd_go_var@a} in
	*r*)
		_hvbsd_sh_error "getopts: $_hvbsd_go_var: is read only"
		_hvbsd_getopts_next[_hvbsd_go_depth]=-1
		return 2
		;;
	esac
	printf -v "$_hvbsd_go_var" '%s' "$_hvbsd_go_letter"
	return "$_hvbsd_go_done"
}
# shellcheck disable=SC2142 # expanded where getopts is called, in the caller
alias getopts='_hvbsd_sh_getopts "$#" "$@" --'

# Tracing back on, as the last command: nothing of this file is shown.
case $_hvbsd_sh_flags in
*x*v* | *v*x*) unset _hvbsd_sh_flags && set -xv ;;
*x*) unset _hvbsd_sh_flags && set -x ;;
*v*) unset _hvbsd_sh_flags && set -v ;;
*) unset _hvbsd_sh_flags ;;
esac
