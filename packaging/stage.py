import os,sys,runpy
b=sys.stdin.buffer.read();f=os.memfd_create("hostdiag.pyz");v=memoryview(b)
while v:v=v[os.write(f,v):]
p="/proc/self/fd/%d"%f;sys.argv[0]=p;sys.stdin=open(os.devnull);runpy.run_path(p,run_name="__main__")
