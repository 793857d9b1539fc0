# gnuplot docs/bench_chart.gp  ->  docs/bench_chart.png
set terminal pngcairo size 1000,520 font ",11"
set output "docs/bench_chart.png"
set title "tenorite vs the in-repo baselines and the Asio floor (medians of 3 runs; above 1 = tenorite better)"
set style data histograms
set style histogram clustered gap 1
set style fill solid 0.8 border -1
set boxwidth 0.9
set logscale y 2
set yrange [0.125:256]
set ytics ("0.125x" 0.125, "0.25x" 0.25, "0.5x" 0.5, "1x" 1, "2x" 2, "4x" 4, "8x" 8, "16x" 16, "32x" 32, "64x" 64, "128x" 128, "256x" 256)
set grid ytics
set xtics rotate by -25 noenhanced
set key top right noenhanced
set arrow from graph 0, first 1 to graph 1, first 1 nohead lw 2 lc rgb "black"
plot "docs/bench.dat" using ($2 > 0 ? $2 : 1/0):xtic(1) title "vs asio_channel", \
     "" using ($3 > 0 ? $3 : 1/0) title "vs std_threads", \
     "" using ($4 > 0 ? $4 : 1/0) title "vs asio_floor (the least an Asio design can do)"
