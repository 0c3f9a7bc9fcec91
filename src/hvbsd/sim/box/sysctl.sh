#!/bin/sh
#
# sysctl shim of the FreeBSD-box personality of hvbsd's simulated Hyper-V
# host.  It is first on the PATH of the actions hvbsd dispatches, answers the
# hn(4) OIDs (and kern.vm_guest) from the file the simulator keeps up to
# date, and hands everything else to the real /sbin/sysctl.  Only reads
# ("sysctl [-n] NAME ...") are answered here; a write to a simulated OID
# fails as writing a read-only OID does.

state=${HVBSD_BOX_SYSCTLS:-/var/run/hvbsd-box/sysctl.state}
real=/sbin/sysctl

value_of()
{
	# Exact name match on "name=value" lines.
	awk -v name="$1" 'index($0, name "=") == 1 { print substr($0, length(name) + 2); found = 1; exit }
	    END { exit !found }' "$state" 2>/dev/null
}

simulated()
{
	case "$1" in
	hw.hn.*|dev.hn.*|kern.vm_guest) value_of "$1" >/dev/null ;;
	*) return 1 ;;
	esac
}

numeric=
case "$1" in
-n) numeric=1; shift ;;
-*) exec "$real" "$@" ;;
esac
[ $# -gt 0 ] || exec "$real" ${numeric:+-n}

status=0
for name in "$@"; do
	case "$name" in
	*=*)
		if simulated "${name%%=*}"; then
			echo "sysctl: oid '${name%%=*}' is read only" >&2
			status=1
		else
			"$real" "$name" || status=1
		fi
		;;
	*)
		if simulated "$name"; then
			if [ -n "$numeric" ]; then
				value_of "$name"
			else
				echo "$name: $(value_of "$name")"
			fi
		else
			"$real" ${numeric:+-n} "$name" || status=1
		fi
		;;
	esac
done
exit $status
