# Flattens protoc text-format FileDescriptorSet into sorted lines: pkg.Msg.field = number type label,
# pkg.Service.Method(in) -> out, pkg.Enum.VALUE = number. Used by compare_with_etcd34.sh.
import sys,re
# Flatten protoc text-format FileDescriptorSet to lines "pkg.Msg.field = num type label"
lines=open(sys.argv[1]).read().splitlines()
stack=[]; out=set(); pkg=''; cur={}
for l in lines:
    s=l.strip()
    if s.endswith('{'):
        stack.append([s[:-1].strip(),{}])
    elif s=='}':
        kind,d=stack.pop()
        path='.'.join([pkg]+[x[1].get('name','?') for x in stack if x[0] in('message_type','nested_type','service','enum_type')])
        if kind=='field': out.add(f"{path}.{d.get('name')} = {d.get('number')} {d.get('type','')}{d.get('type_name','')} {d.get('label')}{' oneof#'+d['oneof_index'] if 'oneof_index' in d else ''}")
        elif kind=='method': out.add(f"{path}.{d.get('name')}({d.get('input_type')}{' stream' if d.get('client_streaming') else ''}) -> {d.get('output_type')}{' stream' if d.get('server_streaming') else ''}")
        elif kind=='value': out.add(f"{path}.{d.get('name')} = {d.get('number')}")
        elif kind in('message_type','nested_type','enum_type','service'): pass
        if stack and kind in('message_type','nested_type','enum_type','service') : pass
    else:
        m=re.match(r'(\w+): (.*)',s)
        if m:
            k,v=m.group(1),m.group(2).strip('"')
            if not stack and k=='package': pass
            if stack: stack[-1][1][k]=v
            if len(stack)==1 and k=='package': pkg=v
for o in sorted(out): print(o)
