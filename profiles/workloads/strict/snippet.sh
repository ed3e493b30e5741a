# Shell builtins only: no subprocess.
x=0; for i in 1 2 3; do x=$((x + i)); done
echo "sum $x" > /work/result.txt
read -r line < /work/result.txt
printf '%s\n' "$line"
