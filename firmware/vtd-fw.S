/*
 * vtd-fw: the smallest firmware that lets QEMU's intel-iommu be driven
 * entirely through qtest (src/qemu/harness.ts).
 *
 * Why not SeaBIOS: SeaBIOS takes seconds, writes guest RAM (tables,
 * stacks, EBDA), programs PCI devices and keeps timers running; a trace
 * must own all of guest RAM and every device register.  This image instead
 * leaves RAM untouched and puts the CPU in a state in which nothing a trace
 * makes the IOMMU deliver (fixed, NMI, SMI, INIT or ExtINT interrupts from a
 * remapped MSI) can make it run code that writes memory:
 *
 *   - IF = 0 (cli): no maskable interrupt is taken.
 *   - GIF = 0 (clgi, AMD SVM, present in QEMU's default TCG CPU "qemu64"):
 *     NMI, SMI and INIT are held pending as well.  An SMI would otherwise
 *     enter SMM and write its state-save area into RAM at 0x3fe00, even with
 *     -machine smm=off.  If the CPU has no SVM, this step is skipped.
 *   - The NMI-disable bit of port 0x70 is set too: harmless, and it is what
 *     real chipsets honour (QEMU's RTC model ignores it).
 *   - Belt and braces, should anything still be taken: every IDT vector
 *     points to a handler that halts forever without IRET (so a further NMI
 *     stays blocked), and ESP = 0 makes the CPU push its exception frame at
 *     0xfffffff4..0xffffffff, which is this ROM (writes vanish), not RAM.
 *   - An INIT, if ever taken, just restarts this code: it writes no RAM.
 *
 * Then the CPU halts for good.  With -icount shift=0,sleep=off the virtual
 * clock jumps straight to the next timer while the CPU halts, so the edu
 * device's 100 ms DMA timer fires at once.
 *
 * Layout: a 64 KiB image mapped at 0xffff0000..0xffffffff (-bios); the
 * reset vector at 0xfffffff0 jumps to the start of the image.
 * Build: firmware/build.sh (GNU as and ld from Debian's binutils).
 */
        .code16
        .section .text
        .globl  _start
_start:
entry16:
        cli
        cld
        movb    $0x80, %al              /* NMI disable (port 0x70 bit 7) */
        outb    %al, $0x70
        /* CS base is 0xffff0000 after reset: address the tables through CS. */
        lgdtl   %cs:(gdt_desc - _start)
        lidtl   %cs:(idt_desc - _start)
        movl    %cr0, %eax
        orl     $1, %eax                /* CR0.PE */
        movl    %eax, %cr0
        ljmpl   $0x08, $entry32

        .code32
entry32:
        movw    $0x10, %ax
        movw    %ax, %ds
        movw    %ax, %es
        movw    %ax, %fs
        movw    %ax, %gs
        movw    %ax, %ss
        xorl    %esp, %esp              /* pushes land in this ROM, see above */

        /* clgi needs CPUID 8000_0001h ECX.SVM and EFER.SVME. */
        movl    $0x80000000, %eax
        cpuid
        cmpl    $0x80000001, %eax
        jb      halt
        movl    $0x80000001, %eax
        cpuid
        testl   $(1 << 2), %ecx
        jz      halt
        movl    $0xc0000080, %ecx       /* EFER */
        rdmsr
        orl     $(1 << 12), %eax        /* EFER.SVME */
        wrmsr
        clgi
halt:
        hlt
        jmp     halt

        /* Every vector: halt, never return. */
trap:
        cli
        hlt
        jmp     trap

        .balign 8
gdt:
        .quad   0                       /* null */
        .quad   0x00cf9b000000ffff      /* 0x08: code, flat 4 GiB, 32-bit */
        .quad   0x00cf93000000ffff      /* 0x10: data, flat 4 GiB */
gdt_end:

        .balign 8
idt:
        .rept   256
        .word   trap - _start           /* offset 15:0 (image base is 0xffff0000) */
        .word   0x08                    /* selector */
        .byte   0, 0x8e                 /* present, DPL 0, 32-bit interrupt gate */
        .word   0xffff                  /* offset 31:16 */
        .endr
idt_end:

gdt_desc:
        .word   gdt_end - gdt - 1
        .long   gdt
idt_desc:
        .word   idt_end - idt - 1
        .long   idt

        /* Reset vector: 0xfffffff0, CS base 0xffff0000, IP 0xfff0. */
        .code16
        .org    0xfff0
        jmp     entry16
        .org    0x10000, 0xf4           /* pad to exactly 64 KiB */
