/*
 * pallet-exec: the last step into a container's program.
 *
 * pallet-runtime is a Python program, so at the moment it execs the container's program its
 * /proc/self/exe is the host's python binary. A program whose first line is
 * "#!/proc/self/exe" would then be interpreted by that binary, and a handle on it kept from
 * inside the container could be used to overwrite it on the host (the CVE-2019-5736 class).
 * So the runtime first executes this tiny binary from a sealed memfd (see process.py):
 * while it runs, /proc/self/exe is that anonymous, write-sealed copy, and from here the
 * container's program is exec'd. Nothing on the host is reachable through it.
 *
 * Usage (internal): pallet-exec PATH ARGV0 [ARGS...]   -- execve(PATH, ARGV0..., environ)
 * No libc: it is copied into a memfd for every container start, so it must stay small.
 */

#define SYS_write 1
#define SYS_execve 59
#define SYS_exit 60

static long sys3(long n, long a, long b, long c)
{
	long r;
	__asm__ volatile("syscall" : "=a"(r) : "a"(n), "D"(a), "S"(b), "d"(c)
			 : "rcx", "r11", "memory");
	return r;
}

static long len(const char *s)
{
	long n = 0;
	while (s[n])
		n++;
	return n;
}

__attribute__((used)) void pallet_exec_main(long *sp)
{
	long argc = sp[0];
	char **argv = (char **)(sp + 1);
	char **envp = argv + argc + 1;
	static const char msg[] = "pallet-exec: execve failed: ";

	if (argc < 3)
		sys3(SYS_exit, 127, 0, 0);
	sys3(SYS_execve, (long)argv[1], (long)(argv + 2), (long)envp);
	sys3(SYS_write, 2, (long)msg, sizeof(msg) - 1);
	sys3(SYS_write, 2, (long)argv[1], len(argv[1]));
	sys3(SYS_write, 2, (long)"\n", 1);
	sys3(SYS_exit, 127, 0, 0);
}

__asm__(".text\n"
	".global _start\n"
	"_start:\n"
	"	mov %rsp, %rdi\n"
	"	and $-16, %rsp\n"
	"	call pallet_exec_main\n"
	"	hlt\n");
